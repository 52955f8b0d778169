"""Capture, void and refund rules through the real switch: partial amounts, illegal transitions."""

from __future__ import annotations

import grpc
import pytest

from payswitch.common.v1 import payment_status_pb2 as ps
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from tests.integration.switch.conftest import connect
from tests.integration.switch.helpers import DECLINE, authorize, error_info, key, money


@pytest.fixture
def stack(sandbox_factory, switch_factory):
    sb = sandbox_factory()
    return sb, switch_factory([(sb, {})])


async def _refused(call, reason: str, code=grpc.StatusCode.FAILED_PRECONDITION) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code
    assert error_info(caught.value).reason == reason


async def test_partial_capture_then_refunds_up_to_the_captured_amount(stack):
    sb, sw = stack
    async with connect(sw) as c:
        p = (await c.Authorize(authorize(10_000, manual=True))).payment
        assert p.status == ps.PAYMENT_STATUS_AUTHORIZED
        assert p.authorized_amount.amount_minor == 10_000
        await _refused(
            c.Capture(
                gw.CaptureRequest(idempotency_key=key(), payment_id=p.id, amount=money(10_001))
            ),
            "ERROR_REASON_AMOUNT_TOO_LARGE",
        )
        await _refused(
            c.Refund(gw.RefundRequest(idempotency_key=key(), payment_id=p.id)),
            "ERROR_REASON_INVALID_PAYMENT_STATE",
        )
        p = (
            await c.Capture(
                gw.CaptureRequest(idempotency_key=key(), payment_id=p.id, amount=money(6_000))
            )
        ).payment
        assert p.status == ps.PAYMENT_STATUS_CAPTURED
        assert p.captured_amount.amount_minor == 6_000
        await _refused(
            c.Capture(gw.CaptureRequest(idempotency_key=key(), payment_id=p.id)),
            "ERROR_REASON_INVALID_PAYMENT_STATE",
        )
        await _refused(
            c.Void(gw.VoidRequest(idempotency_key=key(), payment_id=p.id)),
            "ERROR_REASON_INVALID_PAYMENT_STATE",
        )

        r = await c.Refund(
            gw.RefundRequest(
                idempotency_key=key(), payment_id=p.id, amount=money(2_500), reason="damaged"
            )
        )
        assert r.payment.status == ps.PAYMENT_STATUS_PARTIALLY_REFUNDED
        assert r.refund.amount.amount_minor == 2_500
        assert r.refund.status == ps.PAYMENT_STATUS_REFUNDED
        await _refused(
            c.Refund(gw.RefundRequest(idempotency_key=key(), payment_id=p.id, amount=money(3_501))),
            "ERROR_REASON_AMOUNT_TOO_LARGE",
        )
        r = await c.Refund(gw.RefundRequest(idempotency_key=key(), payment_id=p.id))  # the rest
        assert r.refund.amount.amount_minor == 3_500
        assert r.payment.status == ps.PAYMENT_STATUS_REFUNDED
        assert r.payment.refunded_amount.amount_minor == 6_000
        assert [x.amount.amount_minor for x in r.payment.refunds] == [2_500, 3_500]
        await _refused(
            c.Refund(gw.RefundRequest(idempotency_key=key(), payment_id=p.id, amount=money(1))),
            "ERROR_REASON_INVALID_PAYMENT_STATE",
        )
        await _refused(
            c.Refund(
                gw.RefundRequest(idempotency_key=key(), payment_id=p.id, amount=money(1, "EUR"))
            ),
            "ERROR_REASON_INVALID_REQUEST",
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        got = (await c.GetPayment(gw.GetPaymentRequest(payment_id=p.id))).payment
        assert [e.operation for e in got.events] == [1, 2, 4, 4]
    assert len(sb.received("refund")) == 2
    assert len(sb.received("capture")) == 1


async def test_void_releases_an_authorization_and_ends_it(stack):
    _, sw = stack
    async with connect(sw) as c:
        p = (await c.Authorize(authorize(700, manual=True))).payment
        p = (
            await c.Void(
                gw.VoidRequest(idempotency_key=key(), payment_id=p.id, reason="customer left")
            )
        ).payment
        assert p.status == ps.PAYMENT_STATUS_VOIDED
        await _refused(
            c.Capture(gw.CaptureRequest(idempotency_key=key(), payment_id=p.id)),
            "ERROR_REASON_INVALID_PAYMENT_STATE",
        )
        await _refused(
            c.Void(gw.VoidRequest(idempotency_key=key(), payment_id=p.id)),
            "ERROR_REASON_INVALID_PAYMENT_STATE",
        )


async def test_a_decline_is_an_answer_not_an_error_and_ends_the_payment(stack):
    _, sw = stack
    async with connect(sw) as c:
        p = (await c.Authorize(authorize(100, number=DECLINE))).payment
        assert p.status == ps.PAYMENT_STATUS_DECLINED
        assert p.decline.code != 0
        assert p.decline.raw_code == "05"
        await _refused(
            c.Capture(gw.CaptureRequest(idempotency_key=key(), payment_id=p.id)),
            "ERROR_REASON_INVALID_PAYMENT_STATE",
        )


async def test_payments_belong_to_their_merchant(stack):
    from tests.integration.switch.conftest import OTHER_KEY

    _, sw = stack
    async with connect(sw) as c, connect(sw, OTHER_KEY) as other:
        p = (await c.Authorize(authorize())).payment
        await _refused(
            other.GetPayment(gw.GetPaymentRequest(payment_id=p.id)),
            "ERROR_REASON_PAYMENT_NOT_FOUND",
            grpc.StatusCode.NOT_FOUND,
        )
        await _refused(
            other.Refund(gw.RefundRequest(idempotency_key=key(), payment_id=p.id)),
            "ERROR_REASON_PAYMENT_NOT_FOUND",
            grpc.StatusCode.NOT_FOUND,
        )
