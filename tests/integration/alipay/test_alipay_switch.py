"""End to end: Gateway -> switch (real Redis) -> `payswitch adapter alipay` -> simulator."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from payswitch.common.v1 import decline_code_pb2, payment_method_pb2
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from tests.contract.workers import adapter_process
from tests.integration.alipay.alipaykit import APP_ID, SimulatorProcess, code
from tests.integration.alipay.switchkit import PS, final_status, pay, refund, start_switch
from tests.integration.switch.conftest import Switch, connect
from tests.support import RedisServer


def alipay(scenario: str) -> payment_method_pb2.PaymentMethod:
    return payment_method_pb2.PaymentMethod(
        alipay=payment_method_pb2.AlipayWallet(auth_code=code(scenario))
    )


@pytest.fixture
def stack(
    simulator: SimulatorProcess, redis_server: RedisServer, tmp_path: pathlib.Path
) -> Iterator[Switch]:
    flags = [
        "--gateway", simulator.gateway,
        "--app-id", APP_ID,
        "--app-private-key", simulator.keys.path("app_private"),
        "--platform-public-key", simulator.keys.path("platform_public"),
        "--poll-interval-s", "0.2",
    ]  # fmt: skip
    with adapter_process("alipay", *flags) as worker:
        switch = start_switch(
            tmp_path, redis_server.url, "alipay", worker.port, reconcile_ms=60_000
        )
        try:
            yield switch
        finally:
            switch.stop()


async def test_pay_refund_and_decline_through_the_switch(stack: Switch) -> None:
    async with connect(stack) as c:
        paid = (await c.Authorize(pay(alipay("0000"), 10000))).payment
        assert (paid.status, paid.channel) == (PS.PAYMENT_STATUS_CAPTURED, "alipay")
        assert paid.upstream_reference
        partly = (await c.Refund(refund(paid.id, 2500))).payment
        assert partly.status == PS.PAYMENT_STATUS_PARTIALLY_REFUNDED
        assert partly.refunded_amount.amount_minor == 2500
        declined = (await c.Authorize(pay(alipay("1051"), 500))).payment
        assert declined.status == PS.PAYMENT_STATUS_DECLINED
        assert declined.decline.code == decline_code_pb2.DECLINE_CODE_INSUFFICIENT_FUNDS
        assert declined.decline.raw_code == "ACQ.BUYER_BALANCE_NOT_ENOUGH"


async def test_a_slow_buyer_settles_through_the_channel_event(stack: Switch) -> None:
    # The switch's own reconciler is slowed to a minute: only the adapter's event can settle it.
    async with connect(stack) as c:
        pending = (await c.Authorize(pay(alipay("2001"), 700))).payment
        assert pending.status == PS.PAYMENT_STATUS_PENDING
        statuses = await final_status(c, pending.id)
        assert statuses[-1] == PS.PAYMENT_STATUS_CAPTURED
        got = (await c.GetPayment(gw.GetPaymentRequest(payment_id=pending.id))).payment
        assert got.captured_amount.amount_minor == 700


async def test_a_forged_approval_is_never_an_approval_through_the_switch(stack: Switch) -> None:
    async with connect(stack) as c:
        forged = (await c.Authorize(pay(alipay("3002"), 700))).payment
        assert forged.status == PS.PAYMENT_STATUS_PENDING
        statuses = await final_status(c, forged.id)
        assert PS.PAYMENT_STATUS_CAPTURED not in statuses
        assert statuses[-1] == PS.PAYMENT_STATUS_DECLINED


async def test_a_payment_whose_confirming_query_is_refused_is_pending_through_the_switch(
    stack: Switch,
) -> None:
    # 2009: paid, answered 20000, its query refused (20001) for a while. The payment left, so
    # the switch must hear PENDING (never UNAVAILABLE, "not sent"), and it is settled later.
    async with connect(stack) as c:
        pending = (await c.Authorize(pay(alipay("2009"), 900))).payment
        assert (pending.status, pending.channel) == (PS.PAYMENT_STATUS_PENDING, "alipay")
        statuses = await final_status(c, pending.id)
        assert statuses[-1] == PS.PAYMENT_STATUS_CAPTURED
