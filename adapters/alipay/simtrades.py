"""The Alipay simulator's trade book: payments, slow buyers, cancels and refunds."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adapters.alipay import client, mapping


@dataclass(slots=True)
class Trade:
    """One trade, keyed by the merchant's out_trade_no."""

    out_trade_no: str
    trade_no: str
    auth_code: str = field(repr=False)
    total_fen: int
    subject: str
    status: str = mapping.WAIT_BUYER_PAY
    paid_at: str = ""
    confirm_at: float | None = None
    confirm_pays: bool = True
    refunds: dict[str, int] = field(default_factory=dict)
    cancel_action: str | None = None

    @property
    def refunded_fen(self) -> int:
        return sum(self.refunds.values())

    def fields(self) -> dict[str, Any]:
        """The identifying fields every answer about the trade carries."""
        return {
            "out_trade_no": self.out_trade_no,
            "trade_no": self.trade_no,
            "total_amount": f"{self.total_fen // 100}.{self.total_fen % 100:02d}",
            "buyer_logon_id": "158****1562",
            "buyer_user_id": "2088102146225135",
        }


class TradeBook:
    """All trades of the one app the simulator serves."""

    def __init__(self, *, confirm_after_s: float, clock: Callable[[], float] = time.time) -> None:
        self._confirm_after_s = confirm_after_s
        self._clock = clock
        self._trades: dict[str, Trade] = {}
        self._by_trade_no: dict[str, Trade] = {}

    def count(self) -> int:
        return len(self._trades)

    def refund_count(self) -> int:
        """Refunds taken on, each under its own out_request_no (a repeat is not another)."""
        return sum(len(t.refunds) for t in self._trades.values())

    def get(self, out_trade_no: str) -> Trade | None:
        return self._trades.get(out_trade_no)

    def find(self, out_trade_no: object, trade_no: object) -> Trade | None:
        """By the platform's trade_no first (as the platform does), else by out_trade_no."""
        if isinstance(trade_no, str) and trade_no in self._by_trade_no:
            return self._by_trade_no[trade_no]
        return self._trades.get(out_trade_no) if isinstance(out_trade_no, str) else None

    def open(
        self, out_trade_no: str, trade_no: str, auth_code: str, fen: int, subject: str
    ) -> Trade:
        trade = Trade(out_trade_no, trade_no, auth_code, fen, subject)
        self._trades[out_trade_no] = trade
        self._by_trade_no[trade_no] = trade
        return trade

    def pay(self, trade: Trade) -> None:
        trade.status = mapping.TRADE_SUCCESS
        trade.paid_at = client.beijing_timestamp(self._clock())

    def close(self, trade: Trade) -> None:
        trade.status = mapping.TRADE_CLOSED

    def wait_for_buyer(self, trade: Trade, *, pays: bool) -> None:
        """The buyer must confirm on the phone; after a while they pay (or give up)."""
        trade.confirm_at = self._clock() + self._confirm_after_s
        trade.confirm_pays = pays

    def advance(self, trade: Trade) -> None:
        """Let the buyer's decision happen once its time has come."""
        due = trade.confirm_at is not None and self._clock() >= trade.confirm_at
        if trade.status == mapping.WAIT_BUYER_PAY and due:
            if trade.confirm_pays:
                self.pay(trade)
            else:
                self.close(trade)

    def cancel(self, trade: Trade) -> str | None:
        """Cancel: close an unpaid trade, refund a paid one in full; None when not allowed."""
        self.advance(trade)
        if trade.status == mapping.TRADE_CLOSED:
            trade.cancel_action = trade.cancel_action or "close"
            return trade.cancel_action
        if trade.status == mapping.WAIT_BUYER_PAY:
            trade.cancel_action = "close"
        elif trade.status == mapping.TRADE_SUCCESS and not trade.refunds:
            trade.cancel_action = "refund"
        else:
            return None
        trade.status = mapping.TRADE_CLOSED
        return trade.cancel_action

    def refund(self, trade: Trade, request_no: str, fen: int) -> bool | tuple[str, str]:
        """Refund `fen` under `request_no`: True if money moved, False for a repeat, or an error."""
        self.advance(trade)
        if request_no in trade.refunds:
            if trade.refunds[request_no] == fen:
                return False
            return ("ACQ.DISCORDANT_REPEAT_REQUEST", "请求信息不一致")
        if trade.status == mapping.TRADE_FINISHED:
            return ("ACQ.TRADE_HAS_FINISHED", "交易已完结")
        if trade.status != mapping.TRADE_SUCCESS:
            return ("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        if fen <= 0:
            return ("ACQ.INVALID_PARAMETER", "退款金额无效")
        if trade.refunded_fen + fen > trade.total_fen:
            return ("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
        trade.refunds[request_no] = fen
        if trade.refunded_fen == trade.total_fen:
            trade.status = mapping.TRADE_CLOSED
        return True
