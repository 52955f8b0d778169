"""Redis that cannot be read after a channel was called: the error must not say nothing was sent.

The case needs a resolver (an event, the reconciler) to record the outcome first, and then Redis
to stop answering between the request's own write and its read-back: a window of one round
trip, which a real Redis cannot be made to hit without timing games. So PaymentService runs
here against hand-written fakes at its seams (store, pool), each doing what the real one does
in that case.
"""

from __future__ import annotations

from typing import Any

import pytest

from payswitch.common.v1 import payment_method_pb2
from switch.config import ChannelConfig, MerchantConfig
from switch.errors import StoreUnavailable
from switch.metrics import Metrics
from switch.model import (
    ChannelResult,
    Decline,
    MethodSummary,
    MethodType,
    Operation,
    Outcome,
    Payment,
    Status,
)
from switch.payments import PaymentService, Timing
from switch.pool import NotSent
from switch.risk import Check, RiskDecision
from switch.store import Claimed

# What switch/store.py answers for any command while Redis is down.
STORE_DOWN = "the payment store (Redis) is unavailable; nothing was sent to any channel"


class _Store:
    """A store whose claim succeeds, whose write of the outcome finds that a resolver recorded
    one first (the version moved), and which is down by the time the payment is read back."""

    def __init__(self, payment: Payment) -> None:
        self.payment = payment

    async def claim_followup(self, **_: Any) -> Claimed:
        return Claimed(kind="new", payment=self.payment, amount=self.payment.amount)

    async def complete(self, **_: Any) -> bool:
        return False

    async def get(self, merchant: str, payment_id: str) -> Payment | None:
        raise StoreUnavailable(STORE_DOWN)


class _Pool:
    """A channel that answers every call: approved."""

    channels: dict[str, Any] = {}

    def __init__(self) -> None:
        self.calls: list[Operation] = []

    async def call(self, channel: str, op: Operation, request: object, seconds: float) -> Any:
        self.calls.append(op)
        return ChannelResult(outcome=Outcome.APPROVED, upstream_reference="rrn-2")


class _Fingerprints:
    def request(self, canonical: bytes) -> str:
        return "fp"

    def wallet_buyer(self, **_: str) -> str:
        return "fp-buyer"


def _authorized() -> Payment:
    return Payment(
        id="pay_" + "a" * 24,
        merchant_id="m",
        status=Status.AUTHORIZED,
        currency="USD",
        amount=1000,
        auto_capture=False,
        method=MethodSummary(type=MethodType.CARD),
        channel="c",
        create_ms=1,
        update_ms=1,
        authorized=1000,
        upstream_reference="rrn-1",
        version=2,
    )


async def test_a_capture_sent_then_unreadable_says_the_channel_was_called() -> None:
    payment = _authorized()
    pool = _Pool()
    service = PaymentService(
        store=_Store(payment),  # type: ignore[arg-type]
        pool=pool,  # type: ignore[arg-type]
        router=None,  # type: ignore[arg-type]
        fingerprints=_Fingerprints(),  # type: ignore[arg-type]
        channels=[ChannelConfig(name="c", endpoints=("127.0.0.1:1",))],
        metrics=Metrics(),
        render=lambda op, p: b"",
        on_change=lambda p: None,
        initial_backoff_ms=100,
        risk=None,  # type: ignore[arg-type]
        vault=None,  # type: ignore[arg-type]
    )
    with pytest.raises(StoreUnavailable) as caught:
        await service.follow_up(
            op=Operation.CAPTURE,
            merchant=MerchantConfig(id="m", api_key_sha256="0" * 64),
            idempotency_key="k-1",
            canonical=b"",
            payment_id=payment.id,
            amount=1000,
            currency="USD",
            reason="",
            deadline_s=None,
            timing=Timing(cancellable=False),
        )
    assert pool.calls == [Operation.CAPTURE]  # the channel was called
    message = caught.value.message
    assert "nothing was sent" not in message
    assert "reached a channel" in message
    assert payment.id in message
    assert "GetPayment" in message


class _CascadeStore:
    """A store that claims the payment, records the cascade after the first channel's decline,
    and is down when the payment is handed from the unreachable second channel to the third."""

    in_flight_grace_ms = 30_000

    def __init__(self) -> None:
        self.completes = 0

    def idem_key(self, merchant: str, key: str) -> str:
        return f"idem:{merchant}:{key}"

    async def claim_authorize(self, *, payment: Payment, **_: Any) -> Claimed:
        return Claimed(kind="new", payment=payment, amount=payment.amount)

    async def complete(self, **_: Any) -> bool:
        self.completes += 1
        if self.completes == 1:
            return True  # the cascade from channel a to b
        raise StoreUnavailable(STORE_DOWN)


class _CascadePool:
    """Channel a declines (a code that cascades), b cannot be reached, c approves."""

    channels: dict[str, Any] = {}

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def call(self, channel: str, op: Operation, request: object, seconds: float) -> Any:
        self.calls.append(channel)
        if channel == "a":
            return ChannelResult(outcome=Outcome.DECLINED, decline=Decline(code=1))
        if channel == "b":
            raise NotSent("connection refused")
        return ChannelResult(outcome=Outcome.APPROVED, upstream_reference="rrn-c")


class _Router:
    def __init__(self, names: list[str]) -> None:
        self.names = names

    def candidates(self, _: object) -> list[ChannelConfig]:
        return [ChannelConfig(name=n, endpoints=("127.0.0.1:1",)) for n in self.names]

    def cascades_after(self, decline_code: int, cascaded: int) -> bool:
        return True


class _Risk:
    def check(self, **_: Any) -> Check:
        return Check(RiskDecision.ALLOW)


async def test_redis_down_while_handing_over_after_a_cascade_does_not_say_nothing_was_sent() -> (
    None
):
    names = ["a", "b", "c"]
    pool = _CascadePool()
    service = PaymentService(
        store=_CascadeStore(),  # type: ignore[arg-type]
        pool=pool,  # type: ignore[arg-type]
        router=_Router(names),  # type: ignore[arg-type]
        fingerprints=_Fingerprints(),  # type: ignore[arg-type]
        channels=[ChannelConfig(name=n, endpoints=("127.0.0.1:1",)) for n in names],
        metrics=Metrics(),
        render=lambda op, p: b"",
        on_change=lambda p: None,
        initial_backoff_ms=100,
        risk=_Risk(),  # type: ignore[arg-type]
        vault=None,  # type: ignore[arg-type]
    )
    with pytest.raises(StoreUnavailable) as caught:
        await service.authorize(
            merchant=MerchantConfig(id="m", api_key_sha256="0" * 64),
            idempotency_key="k-1",
            canonical=b"",
            amount=1000,
            currency="CNY",
            method=payment_method_pb2.PaymentMethod(
                alipay=payment_method_pb2.AlipayWallet(auth_code="28763443825664394")
            ),
            auto_capture=True,
            merchant_reference="",
            description="",
            deadline_s=None,
            timing=Timing(cancellable=False),
        )
    assert pool.calls == ["a", "b"]  # a was called (and declined); c never was
    message = caught.value.message
    assert "nothing was sent to any channel" not in message
    assert "nothing was charged" in message
    assert "channel c" in message
