"""A pretend upstream kept in memory: what your real channel's simulator.py would serve.

Its API is a toy JSON-like one (dicts of strings): `pay`, `refund` and `query`, each keyed by
the caller's order id. Like real wallet APIs it is idempotent by that id: the same id twice
returns the first answer and charges once. Card numbers choose the outcome by their last four
digits: 0002 declines "05", 9995 declines "51", 0341 is approved but its answer is lost.

Given a journal, it appends a JSON line for each payment and refund it takes on as new
(`{"op": "authorize", "reference": ORDER_ID}`), so that the conformance suite can count what
it charged; your simulator should be able to tell the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TextIO

LOST_ANSWER = "lost"


@dataclass(slots=True)
class _Trade:
    amount: int
    code: str
    refunded: int = 0


class PretendUpstream:
    """The upstream's state and rules; `handle` answers one message."""

    def __init__(self, journal: TextIO | None = None) -> None:
        self._trades: dict[str, _Trade] = {}
        self._refunds: dict[str, dict[str, str]] = {}
        self._journal = journal

    def handle(self, message: dict[str, str]) -> dict[str, str]:
        op = message["op"]
        if op == "pay":
            return self._pay(message)
        if op == "refund":
            return self._refund(message)
        trade = self._trades.get(message["order_id"])
        refund = self._refunds.get(message["order_id"])
        if trade is not None:
            return {"code": trade.code, "trade_no": f"T{message['order_id']}"}
        return refund if refund is not None else {"code": "NOTFOUND"}

    def _pay(self, message: dict[str, str]) -> dict[str, str]:
        order_id = message["order_id"]
        trade = self._trades.get(order_id)
        if trade is None:
            ending = message["card_number"][-4:]
            code = {"0002": "05", "9995": "51"}.get(ending, "00")
            trade = self._trades[order_id] = _Trade(int(message["amount"]), code)
            self._note("authorize", order_id)
            if ending == "0341":
                return {"code": trade.code, LOST_ANSWER: "1"}
        return {"code": trade.code, "trade_no": f"T{order_id}"}

    def _refund(self, message: dict[str, str]) -> dict[str, str]:
        refund_id = message["refund_id"]
        if refund_id in self._refunds:
            return self._refunds[refund_id]
        trade = self._trades.get(message["order_id"])
        amount = int(message["amount"])
        if trade is None or trade.code != "00":
            answer = {"code": "12"}
        elif amount > trade.amount - trade.refunded:
            answer = {"code": "13"}
        else:
            trade.refunded += amount
            answer = {"code": "00", "trade_no": f"R{refund_id}"}
        self._refunds[refund_id] = answer
        self._note("refund", refund_id)
        return answer

    def _note(self, op: str, reference: str) -> None:
        if self._journal is not None:
            self._journal.write(json.dumps({"op": op, "reference": reference}) + "\n")
