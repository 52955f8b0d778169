"""Unknown outcomes: a timed-out authorization is PENDING, never retried elsewhere, and resolved."""

from __future__ import annotations

import asyncio

from payswitch.common.v1 import payment_status_pb2 as ps
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from tests.integration.switch.conftest import connect
from tests.integration.switch.helpers import PENDING, TIMEOUT, authorize, key, money


async def _watch_until_done(client, payment_id: str) -> list[int]:
    statuses = []
    async for update in client.WatchPayment(
        gw.WatchPaymentRequest(payment_id=payment_id), timeout=20
    ):
        statuses.append(update.payment.status)
    return statuses


async def test_a_timed_out_authorization_is_pending_then_resolved_by_inquiry(
    sandbox_factory, switch_factory
):
    slow = sandbox_factory("slow", "--hang-ms", "3000")
    backup = sandbox_factory("backup")
    sw = switch_factory([(slow, {"priority": 1, "timeout_ms": 300}), (backup, {"priority": 2})])
    async with connect(sw) as c:
        p = (await c.Authorize(authorize(4200, number=TIMEOUT))).payment
        assert p.status == ps.PAYMENT_STATUS_PENDING
        assert p.pending_operation == 1  # OPERATION_TYPE_AUTHORIZE
        assert p.channel == "slow"
        statuses = await _watch_until_done(c, p.id)
        assert statuses[-1] == ps.PAYMENT_STATUS_CAPTURED
        final = (await c.GetPayment(gw.GetPaymentRequest(payment_id=p.id))).payment
        assert final.status == ps.PAYMENT_STATUS_CAPTURED
        assert final.captured_amount.amount_minor == 4200
        assert [e.status for e in final.events] == [
            ps.PAYMENT_STATUS_PENDING,
            ps.PAYMENT_STATUS_CAPTURED,
        ]
    assert backup.received() == [], "an unknown outcome must never be retried on another channel"
    assert len(slow.received("authorize")) == 1


async def test_a_watcher_sees_a_pending_payment_resolve_from_a_channel_event(
    sandbox_factory, switch_factory
):
    sb = sandbox_factory("sandbox", "--pending-resolve-ms", "700")
    sw = switch_factory([(sb, {})], reconciler_interval_ms=60_000)  # only the event can resolve it
    async with connect(sw) as c:
        p = (await c.Authorize(authorize(900, number=PENDING, manual=True))).payment
        assert p.status == ps.PAYMENT_STATUS_PENDING
        statuses = await asyncio.wait_for(_watch_until_done(c, p.id), 15)
        assert statuses[0] == ps.PAYMENT_STATUS_PENDING
        assert statuses[-1] == ps.PAYMENT_STATUS_AUTHORIZED
        # the pending payment is now an ordinary authorization
        cap = await c.Capture(
            gw.CaptureRequest(idempotency_key=key(), payment_id=p.id, amount=money(900))
        )
        assert cap.payment.status == ps.PAYMENT_STATUS_CAPTURED


async def test_a_pending_payment_refuses_other_operations_until_resolved(
    sandbox_factory, switch_factory
):
    import grpc

    sb = sandbox_factory("sandbox", "--pending-resolve-ms", "1500")
    sw = switch_factory([(sb, {})])
    async with connect(sw) as c:
        p = (await c.Authorize(authorize(300, number=PENDING, manual=True))).payment
        try:
            await c.Void(gw.VoidRequest(idempotency_key=key(), payment_id=p.id))
            raise AssertionError("a void of a pending payment was accepted")
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.ABORTED
        assert sb.received("void") == []
