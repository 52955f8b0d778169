"""The answers the switch sends and stores for replays: every field of the payment, byte for byte
what protobuf writes when it is given the same values."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from payswitch.gateway.v1 import gateway_service_pb2 as gw
from payswitch.gateway.v1 import payment_pb2
from switch.model import (
    Decline,
    Event,
    MethodSummary,
    MethodType,
    Operation,
    Payment,
    RefundRecord,
    ReviewState,
    Risk,
    RiskDecision,
    Status,
)
from switch.server import payment_proto, render


def payment(**changes: object) -> Payment:
    base = Payment(
        id="pay_01JABCDEFGHJKMNPQRSTVWXYZ0",
        merchant_id="m_1",
        status=Status.CAPTURED,
        currency="USD",
        amount=1999,
        auto_capture=True,
        method=MethodSummary(MethodType.CARD, "424242", "4242", 12, 2030, "f" * 64),
        channel="sandbox",
        create_ms=1_764_259_200_123,
        update_ms=1_764_259_200_456,
        merchant_reference="order-1",
        authorized=1999,
        captured=1999,
        upstream_reference="sb_1",
        authorization_code="A1",
        events=(Event(Operation.AUTHORIZE, Status.CAPTURED, 1999, "pay_1:a", 1_764_259_200_456),),
        risk=Risk(RiskDecision.ALLOW, "", 120),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def oracle(p: Payment) -> payment_pb2.Payment:
    """The same view built the other way protobuf offers: its constructor, from nested dicts."""

    def money(amount: int) -> dict[str, Any]:
        return {"amount_minor": amount, "currency": p.currency}

    def ts(ms: int) -> dict[str, int]:
        return {"seconds": ms // 1000, "nanos": ms % 1000 * 1_000_000}

    def decline(d: Decline | None) -> dict[str, Any] | None:
        return None if d is None else {"code": d.code, "raw_code": d.raw_code, "message": d.message}

    m = p.method
    fields: dict[str, Any] = {
        "id": p.id,
        "merchant_reference": p.merchant_reference,
        "status": p.status.value,
        "amount": money(p.amount),
        "authorized_amount": money(p.authorized),
        "captured_amount": money(p.captured),
        "refunded_amount": money(p.refunded),
        "capture_mode": 1 if p.auto_capture else 2,
        "payment_method": {
            "type": m.type.value,
            "card_bin": m.card_bin,
            "card_last4": m.card_last4,
            "card_expiry_month": m.expiry_month,
            "card_expiry_year": m.expiry_year,
            "fingerprint": m.fingerprint,
        },
        "channel": p.channel,
        "upstream_reference": p.upstream_reference,
        "authorization_code": p.authorization_code,
        "decline": decline(p.decline),
        "refunds": [
            {
                "id": r.id,
                "amount": money(r.amount),
                "reason": r.reason,
                "status": r.status.value,
                "create_time": ts(r.time_ms),
            }
            for r in p.refunds
        ],
        "events": [
            {
                "operation": e.operation.value,
                "status": e.status.value,
                "amount": money(e.amount),
                "channel_reference": e.reference,
                "decline": decline(e.decline),
                "time": ts(e.time_ms),
            }
            for e in p.events
        ],
        "create_time": ts(p.create_ms),
        "update_time": ts(p.update_ms),
        "status_message": p.status_message,
    }
    if p.status is Status.PENDING:
        fields["pending_operation"] = p.pending_op.value if p.pending_op else 0
        held = p.risk is not None and p.risk.review in (ReviewState.HELD, ReviewState.APPROVED)
        fields["pending_reason"] = (
            payment_pb2.PENDING_REASON_RISK_REVIEW
            if held
            else payment_pb2.PENDING_REASON_OUTCOME_UNKNOWN
        )
    if p.risk is not None:
        fields["risk"] = {
            "decision": p.risk.decision.value,
            "rule": p.risk.rule,
            "anomaly_score": p.risk.score_milli / 1000,
        }
        if p.risk.review is not None:
            fields["risk"]["review"] = p.risk.review.value
    return payment_pb2.Payment(**fields)


DECLINE = Decline(51, "51", "insufficient funds")
REFUNDS = (
    RefundRecord("rf_1", 500, "damaged", Status.PARTIALLY_REFUNDED, 1_764_259_300_000),
    RefundRecord("rf_2", 300, "", Status.DECLINED, 1_764_259_400_001),
)
CASES = {
    "captured": payment(),
    "manual, authorized, no risk verdict": payment(
        status=Status.AUTHORIZED, auto_capture=False, captured=0, risk=None
    ),
    "declined, with the decline on the event too": payment(
        status=Status.DECLINED,
        authorized=0,
        captured=0,
        decline=DECLINE,
        status_message="declined by the issuer",
        events=(Event(Operation.AUTHORIZE, Status.DECLINED, 1999, "r", 5, DECLINE),),
    ),
    "pending, outcome unknown": payment(
        status=Status.PENDING, pending_op=Operation.CAPTURE, authorized=1999, captured=0
    ),
    "pending, held for review": payment(
        status=Status.PENDING,
        pending_op=Operation.AUTHORIZE,
        authorized=0,
        captured=0,
        events=(),
        risk=Risk(RiskDecision.REVIEW, "velocity", 870, ReviewState.HELD),
    ),
    "refunded twice": payment(
        status=Status.PARTIALLY_REFUNDED,
        refunded=500,
        refunds=REFUNDS,
        events=(
            Event(Operation.AUTHORIZE, Status.CAPTURED, 1999, "a", 1),
            Event(Operation.REFUND, Status.PARTIALLY_REFUNDED, 500, "rf_1", 2),
            Event(Operation.REFUND, Status.DECLINED, 300, "rf_2", 3, DECLINE),
        ),
    ),
    "zero amounts, a wallet, text outside ASCII, the largest amount": payment(
        amount=10**15,
        authorized=0,
        captured=0,
        method=MethodSummary(MethodType.ALIPAY, "", "", 0, 0, ""),
        merchant_reference="订单-42 ✓",
        status_message="",
        create_ms=0,
        update_ms=999,
    ),
}


@pytest.mark.parametrize("p", CASES.values(), ids=CASES.keys())
def test_the_payment_view_is_what_protobuf_writes_for_the_same_values(p: Payment) -> None:
    expected = oracle(p)
    assert payment_proto(p) == expected
    for op, response in (
        (Operation.AUTHORIZE, gw.AuthorizeResponse),
        (Operation.CAPTURE, gw.CaptureResponse),
        (Operation.VOID, gw.VoidResponse),
    ):
        assert render(op, p) == response(payment=expected).SerializeToString()


def test_a_refund_answer_carries_the_refund_its_latest_event_recorded() -> None:
    p = CASES["refunded twice"]
    answer = gw.RefundResponse.FromString(render(Operation.REFUND, p))
    assert answer.payment == oracle(p)
    assert (answer.refund.id, answer.refund.amount.amount_minor) == ("rf_2", 300)
    assert answer.refund.status == Status.DECLINED.value
    # A payment whose latest event is no refund answers without one.
    assert not gw.RefundResponse.FromString(render(Operation.REFUND, payment())).HasField("refund")
