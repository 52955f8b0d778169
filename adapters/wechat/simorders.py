"""The WeChat Pay simulator's order book: codepay orders, slow buyers, reverse, close, refunds."""

from __future__ import annotations

import datetime
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adapters.wechat import mapping

BEIJING = datetime.timezone(datetime.timedelta(hours=8))
PAID = frozenset({mapping.SUCCESS, mapping.REFUND})
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


@dataclass(slots=True)
class Refund:
    """One refund of an order, keyed by the merchant's out_refund_no."""

    out_refund_no: str
    refund_id: str
    fen: int
    created: str
    notify_url: str
    status: str = "PROCESSING"
    success_time: str = ""


@dataclass(slots=True)
class Order:
    """One codepay order, keyed by the merchant's out_trade_no."""

    appid: str
    mchid: str
    out_trade_no: str
    transaction_id: str
    auth_code: str = field(repr=False)
    total_fen: int
    description: str
    attach: str
    notify_url: str
    trade_state: str = mapping.USERPAYING
    success_time: str = ""
    refunds: dict[str, Refund] = field(default_factory=dict)
    # Scenario 2008: the platform takes this much less than asked, of the order and each refund.
    short_fen: int = 0

    @property
    def refunded_fen(self) -> int:
        return sum(r.fen for r in self.refunds.values())


class OrderBook:
    """All orders of the one merchant the simulator serves."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._orders: dict[str, Order] = {}
        self._refunds: dict[str, tuple[Order, Refund]] = {}
        self._numbers = itertools.count(1)

    def now(self) -> str:
        """The platform's RFC 3339 time in Beijing."""
        return datetime.datetime.fromtimestamp(self._clock(), BEIJING).isoformat(timespec="seconds")

    def _number(self, prefix: str) -> str:
        day = datetime.datetime.fromtimestamp(self._clock(), BEIJING).strftime("%Y%m%d")
        return f"{prefix}{day}{next(self._numbers):014d}"

    def count(self) -> int:
        return len(self._orders)

    def refund_count(self) -> int:
        """Refunds taken on, each under its own out_refund_no (a repeat is not another)."""
        return len(self._refunds)

    def get(self, out_trade_no: str) -> Order | None:
        return self._orders.get(out_trade_no)

    def open(self, payload: dict[str, Any], *, attach: str, notify_url: str) -> Order:
        order = Order(
            appid=str(payload["appid"]),
            mchid=str(payload["mchid"]),
            out_trade_no=str(payload["out_trade_no"]),
            transaction_id=self._number("4200"),
            auth_code=str(payload["payer"]["auth_code"]),
            total_fen=int(payload["amount"]["total"]),
            description=str(payload["description"]),
            attach=attach,
            notify_url=notify_url,
        )
        self._orders[order.out_trade_no] = order
        return order

    def pay(self, order: Order) -> None:
        order.trade_state = mapping.SUCCESS
        order.success_time = self.now()

    def fail(self, order: Order) -> None:
        order.trade_state = mapping.PAYERROR

    def reverse(self, order: Order) -> str | None:
        """Reverse: close an unpaid order, refund a paid one in full; an error code if not."""
        if order.refunds:
            return "INVALID_REQUEST"
        if order.trade_state != mapping.CLOSED:
            order.trade_state = mapping.REVOKED
        return None

    def close(self, order: Order) -> str | None:
        if order.trade_state in PAID:
            return "ORDERPAID"
        order.trade_state = mapping.CLOSED
        return None

    def refund(self, order: Order, out_refund_no: str, fen: int, notify_url: str) -> Refund:
        refund = Refund(out_refund_no, self._number("5030"), fen, self.now(), notify_url)
        order.refunds[out_refund_no] = refund
        order.trade_state = mapping.REFUND
        self._refunds[out_refund_no] = (order, refund)
        return refund

    def find_refund(self, out_refund_no: str) -> tuple[Order, Refund] | None:
        return self._refunds.get(out_refund_no)

    def settle_refund(self, refund: Refund) -> None:
        refund.status = mapping.SUCCESS
        refund.success_time = self.now()


def transaction_view(order: Order) -> dict[str, Any]:
    """An order as the query, the codepay answer and notifications show it."""
    view: dict[str, Any] = {
        "appid": order.appid,
        "mchid": order.mchid,
        "out_trade_no": order.out_trade_no,
        "trade_type": "MICROPAY",
        "trade_state": order.trade_state,
        "trade_state_desc": _STATE_DESC.get(order.trade_state, ""),
        "amount": {"total": order.total_fen, "currency": mapping.CURRENCY},
    }
    if order.success_time:
        view |= {
            "transaction_id": order.transaction_id,
            "bank_type": "OTHERS",
            "attach": order.attach,
            "success_time": order.success_time,
            "payer": {"openid": OPENID},
        }
        view["amount"] |= {"payer_total": order.total_fen, "payer_currency": mapping.CURRENCY}
    return view


def refund_view(order: Order, refund: Refund) -> dict[str, Any]:
    """A refund as its answer, its query and its notification show it."""
    view: dict[str, Any] = {
        "mchid": order.mchid,
        "refund_id": refund.refund_id,
        "out_refund_no": refund.out_refund_no,
        "transaction_id": order.transaction_id,
        "out_trade_no": order.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "create_time": refund.created,
        "status": refund.status,
        "refund_status": refund.status,
        "funds_account": "AVAILABLE",
        "amount": {
            "total": order.total_fen,
            "refund": refund.fen,
            "payer_total": order.total_fen,
            "payer_refund": refund.fen,
            "currency": mapping.CURRENCY,
        },
    }
    if refund.success_time:
        view["success_time"] = refund.success_time
    return view


_STATE_DESC = {
    mapping.SUCCESS: "支付成功",
    mapping.REFUND: "转入退款",
    mapping.NOTPAY: "未支付",
    mapping.CLOSED: "已关闭",
    mapping.REVOKED: "已撤销",
    mapping.USERPAYING: "用户支付中",
    mapping.PAYERROR: "支付失败",
}
