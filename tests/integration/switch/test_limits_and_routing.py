"""Rate limits with a retry delay, routing by capability, and failover when a channel is down."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2

from payswitch.common.v1 import payment_status_pb2 as ps
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from tests.integration.switch.conftest import connect
from tests.integration.switch.helpers import SLOW, authorize, detail, error_info


async def test_over_the_merchant_limit_calls_wait_for_the_retry_delay(
    sandbox_factory, switch_factory
):
    sb = sandbox_factory()
    sw = switch_factory([(sb, {})], merchant_rate=2, merchant_burst=3)
    async with connect(sw) as client:
        for _ in range(3):
            assert (
                await client.Authorize(authorize())
            ).payment.status == ps.PAYMENT_STATUS_CAPTURED
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.Authorize(authorize())
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_info(caught.value).reason == "ERROR_REASON_MERCHANT_RATE_LIMITED"
        retry = detail(caught.value, error_details_pb2.RetryInfo)
        delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9  # type: ignore[attr-defined]
        assert 0 < delay <= 0.5
        assert len(sb.received("authorize")) == 3

        await asyncio.sleep(delay + 0.02)
        assert (await client.Authorize(authorize())).payment.status == ps.PAYMENT_STATUS_CAPTURED


async def test_a_channel_over_its_quota_hands_payments_to_the_next(sandbox_factory, switch_factory):
    first = sandbox_factory("first")
    second = sandbox_factory("second")
    sw = switch_factory(
        [(first, {"priority": 1, "rate_per_s": 1, "burst": 2}), (second, {"priority": 2})]
    )
    async with connect(sw) as client:
        channels = [(await client.Authorize(authorize())).payment.channel for _ in range(4)]
    assert channels == ["first", "first", "second", "second"]
    assert len(first.received("authorize")) == 2


async def test_routing_follows_capabilities(sandbox_factory, switch_factory):
    usd = sandbox_factory("usd_only", "--currencies", "USD")
    cny = sandbox_factory("cny_only", "--currencies", "CNY")
    sw = switch_factory([(usd, {}), (cny, {})])
    async with connect(sw) as client:
        assert (await client.Authorize(authorize(100, "USD"))).payment.channel == "usd_only"
        assert (await client.Authorize(authorize(100, "CNY"))).payment.channel == "cny_only"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.Authorize(authorize(100, "EUR"))
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_info(caught.value).reason == "ERROR_REASON_NO_ROUTE"


async def test_a_channel_refusing_connections_is_skipped_for_the_next(
    sandbox_factory, switch_factory
):
    primary = sandbox_factory("primary")
    backup = sandbox_factory("backup")
    sw = switch_factory([(primary, {"priority": 1}), (backup, {"priority": 2})])
    async with connect(sw) as client:
        assert (await client.Authorize(authorize())).payment.channel == "primary"
        primary.kill()  # its port now refuses connections
        for _ in range(3):
            p = (await client.Authorize(authorize())).payment
            assert p.status == ps.PAYMENT_STATUS_CAPTURED
            assert p.channel == "backup"
        assert len(backup.received("authorize")) == 3


async def test_a_switch_killed_after_failing_over_leaves_the_payment_with_the_channel_that_has_it(
    sandbox_factory, switch_factory
):
    primary = sandbox_factory("primary")
    backup = sandbox_factory("backup", "--slow-ms", "1500")
    channels = [
        (primary, {"priority": 1, "timeout_ms": 3000}),
        (backup, {"priority": 2, "timeout_ms": 3000}),
    ]
    grace = "in_flight_grace_ms = 3500\n"
    first = switch_factory(channels, extra=grace)
    assert first.proc is not None
    primary.kill()  # refuses connections: the payment fails over to the backup
    async with connect(first) as client:
        call = asyncio.ensure_future(client.Authorize(authorize(4200, number=SLOW)))
        for _ in range(200):
            if backup.received("authorize"):
                break
            await asyncio.sleep(0.02)
        [sent] = backup.received("authorize")
        first.proc.kill()  # dies while the backup holds the authorization: nothing recorded
        with pytest.raises(grpc.aio.AioRpcError):
            await call
    payment_id = str(sent["reference"]).split("-")[1]
    # The primary is back and has never heard of the payment. A reconciler that asked it would
    # record FAILED while the backup charged the card.
    primary.start()
    second = switch_factory(channels, extra=grace)
    async with connect(second) as client:
        for _ in range(300):
            p = (await client.GetPayment(gw.GetPaymentRequest(payment_id=payment_id))).payment
            if p.status != ps.PAYMENT_STATUS_PENDING:
                break
            await asyncio.sleep(0.05)
    assert (p.status, p.channel) == (ps.PAYMENT_STATUS_CAPTURED, "backup")
    assert p.captured_amount.amount_minor == 4200
    assert primary.received() == [], "the primary never saw the payment: nothing to ask it"
    assert len(backup.received("authorize")) == 1


async def test_with_every_channel_down_nothing_is_charged_and_the_key_can_be_retried(
    sandbox_factory, switch_factory
):
    only = sandbox_factory("only")
    sw = switch_factory([(only, {})])
    request = authorize()
    async with connect(sw) as client:
        only.kill()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.Authorize(request)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_info(caught.value).reason == "ERROR_REASON_CHANNEL_UNAVAILABLE"
        only.start()  # on the same port, where the switch expects it
        for _ in range(50):
            try:
                p = (await client.Authorize(request)).payment
                break
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE
                await asyncio.sleep(0.2)
        else:
            raise AssertionError("the channel never came back")
        assert p.status == ps.PAYMENT_STATUS_CAPTURED
