"""Exactly-once authorization under concurrent and repeated requests with one idempotency key."""

from __future__ import annotations

import asyncio

import grpc

from payswitch.common.v1 import payment_status_pb2 as ps
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from tests.integration.switch.conftest import API_KEY, connect
from tests.integration.switch.helpers import authorize, error_info, key, money


async def test_fifty_concurrent_calls_with_one_key_charge_once(sandbox_factory, switch_factory):
    sb = sandbox_factory("sandbox", "--latency-ms", "200")
    sw = switch_factory([(sb, {})])
    request = authorize(1234)
    async with connect(sw) as client:
        results = await asyncio.gather(
            *(client.Authorize(request) for _ in range(50)), return_exceptions=True
        )
        payments = [r.payment for r in results if isinstance(r, gw.AuthorizeResponse)]
        errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert len(payments) + len(errors) == 50, [
            r for r in results if not isinstance(r, gw.AuthorizeResponse | grpc.aio.AioRpcError)
        ]
        assert payments, "at least the first caller gets the payment"
        assert {p.id for p in payments} == {payments[0].id}
        for e in errors:
            assert e.code() == grpc.StatusCode.ABORTED
            assert error_info(e).reason == "ERROR_REASON_IDEMPOTENCY_KEY_IN_PROGRESS"
        assert len(sb.received("authorize")) == 1

        later = await client.Authorize(request)
        assert later.payment == payments[0]
        assert later.payment.status == ps.PAYMENT_STATUS_CAPTURED
        assert len(sb.received("authorize")) == 1


async def test_same_key_with_a_different_amount_is_refused_and_not_forwarded(
    sandbox_factory, switch_factory
):
    sb = sandbox_factory()
    sw = switch_factory([(sb, {})])
    k = key()
    async with connect(sw) as client:
        first = await client.Authorize(authorize(1000, idempotency_key=k))
        assert first.payment.status == ps.PAYMENT_STATUS_CAPTURED
        try:
            await client.Authorize(authorize(2000, idempotency_key=k))
            raise AssertionError("a reused key was accepted")
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert error_info(exc).reason == "ERROR_REASON_IDEMPOTENCY_KEY_REUSED"
        assert len(sb.received("authorize")) == 1


async def test_replayed_capture_and_refund_do_not_repeat(sandbox_factory, switch_factory):
    sb = sandbox_factory()
    sw = switch_factory([(sb, {})])
    async with connect(sw) as client:
        auth = await client.Authorize(authorize(5000, manual=True))
        pid = auth.payment.id
        cap_req = gw.CaptureRequest(idempotency_key=key(), payment_id=pid, amount=money(5000))
        first = await client.Capture(cap_req)
        again = await client.Capture(cap_req)
        assert first == again
        ref_req = gw.RefundRequest(idempotency_key=key(), payment_id=pid, amount=money(1000))
        r1 = await client.Refund(ref_req)
        r2 = await client.Refund(ref_req)
        assert r1 == r2
        assert r1.refund.amount.amount_minor == 1000
        got = await client.GetPayment(gw.GetPaymentRequest(payment_id=pid))
        assert got.payment.refunded_amount.amount_minor == 1000
        assert len(sb.received("capture")) == 1
        assert len(sb.received("refund")) == 1


async def test_a_retry_carrying_fields_this_switch_does_not_know_is_a_replay(
    sandbox_factory, switch_factory
):
    # A newer client's retry may carry fields this switch does not know, or carry them only on
    # one of its tries: the switch ignores them, so it is the same request.
    sb = sandbox_factory()
    sw = switch_factory([(sb, {})])
    request = authorize(4321)
    plain = request.SerializeToString()
    newer = gw.AuthorizeRequest.FromString(plain)
    newer.payment_method.card.MergeFromString(b"\xa0\x06\x01")  # field 100 = 1, in the card
    extended = newer.SerializeToString() + b"\xfa\x07\x03new"  # field 127 = "new", top level
    assert len(extended) > len(plain) + 5
    async with grpc.aio.insecure_channel(sw.address) as chan:
        call = chan.unary_unary("/payswitch.gateway.v1.GatewayService/Authorize")
        metadata = (("authorization", f"Bearer {API_KEY}"),)
        first = gw.AuthorizeResponse.FromString(await call(plain, metadata=metadata, timeout=10))
        again = gw.AuthorizeResponse.FromString(await call(extended, metadata=metadata, timeout=10))
    assert first.payment.status == ps.PAYMENT_STATUS_CAPTURED
    assert again.payment == first.payment
    assert len(sb.received("authorize")) == 1
