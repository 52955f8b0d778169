"""End to end: Gateway -> switch (real Redis) -> `payswitch adapter wechat` -> simulator."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from payswitch.common.v1 import decline_code_pb2, payment_method_pb2
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from tests.contract.workers import adapter_process
from tests.integration.alipay.switchkit import PS, final_status, pay, refund, start_switch
from tests.integration.switch.conftest import Switch, connect
from tests.integration.wechat.wechatkit import APPID, MCHID, SimulatorProcess, code
from tests.support import RedisServer, free_port


def wechat(scenario: str) -> payment_method_pb2.PaymentMethod:
    return payment_method_pb2.PaymentMethod(
        wechat_pay=payment_method_pb2.WechatPayWallet(auth_code=code(scenario))
    )


@pytest.fixture
def stack(
    simulator: SimulatorProcess, redis_server: RedisServer, tmp_path: pathlib.Path
) -> Iterator[Switch]:
    flags = [
        "--api-base", simulator.api_base,
        "--mchid", MCHID,
        "--appid", APPID,
        "--merchant-private-key", simulator.keys.path("merchant_private"),
        "--platform-public-key", simulator.keys.path("platform_public"),
        "--apiv3-key", simulator.keys.path("apiv3.key"),
        "--notify-listen", f"127.0.0.1:{free_port()}",
        "--poll-interval-s", "0",
    ]  # fmt: skip
    with adapter_process("wechat", *flags) as worker:
        # Neither the adapter nor the switch polls: only the platform's notification settles.
        switch = start_switch(
            tmp_path, redis_server.url, "wechat", worker.port, reconcile_ms=60_000
        )
        try:
            yield switch
        finally:
            switch.stop()


async def test_pay_refund_and_decline_through_the_switch(stack: Switch) -> None:
    async with connect(stack) as c:
        paid = (await c.Authorize(pay(wechat("0000"), 10000))).payment
        assert (paid.status, paid.channel) == (PS.PAYMENT_STATUS_CAPTURED, "wechat")
        refunded = (await c.Refund(refund(paid.id, 10000))).payment
        assert refunded.status == PS.PAYMENT_STATUS_REFUNDED
        declined = (await c.Authorize(pay(wechat("1051"), 500))).payment
        assert declined.status == PS.PAYMENT_STATUS_DECLINED
        assert declined.decline.code == decline_code_pb2.DECLINE_CODE_INSUFFICIENT_FUNDS


async def test_watch_payment_sees_the_notification_settle_a_userpaying_payment(
    stack: Switch,
) -> None:
    async with connect(stack) as c:
        pending = (await c.Authorize(pay(wechat("2001"), 1200))).payment
        assert pending.status == PS.PAYMENT_STATUS_PENDING
        statuses = await final_status(c, pending.id)
        assert statuses[0] == PS.PAYMENT_STATUS_PENDING
        assert statuses[-1] == PS.PAYMENT_STATUS_CAPTURED
        got = (await c.GetPayment(gw.GetPaymentRequest(payment_id=pending.id))).payment
        assert got.captured_amount.amount_minor == 1200


async def test_a_payment_whose_confirming_query_is_refused_is_pending_through_the_switch(
    stack: Switch,
) -> None:
    # 2009: paid, answered 500 SYSTEM_ERROR, its query refused (403 NO_AUTH_MCH) for a while.
    # The payment left, so the switch must hear PENDING (never UNAVAILABLE, "not sent").
    async with connect(stack) as c:
        pending = (await c.Authorize(pay(wechat("2009"), 900))).payment
        assert (pending.status, pending.channel) == (PS.PAYMENT_STATUS_PENDING, "wechat")
        statuses = await final_status(c, pending.id)
        assert statuses[-1] == PS.PAYMENT_STATUS_CAPTURED
