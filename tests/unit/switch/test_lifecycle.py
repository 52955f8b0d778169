"""The payment state machine: legal operations and what each channel answer does to a payment."""

from __future__ import annotations

import pytest

from switch.lifecycle import IllegalOperation, cascade, check, settle, unreachable_after_cascade
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

APPROVED = ChannelResult(
    outcome=Outcome.APPROVED, upstream_reference="rrn1", authorization_code="A1B2C3"
)
DECLINED = ChannelResult(
    outcome=Outcome.DECLINED, decline=Decline(code=2, raw_code="51", message="insufficient funds")
)
PENDING = ChannelResult(outcome=Outcome.PENDING, message="timeout")
NOT_FOUND = ChannelResult(outcome=Outcome.NOT_FOUND)


def new(auto: bool = False, amount: int = 1000) -> Payment:
    return Payment(
        id="pay_x",
        merchant_id="m",
        status=Status.PENDING,
        currency="USD",
        amount=amount,
        auto_capture=auto,
        method=MethodSummary(type=MethodType.CARD),
        channel="c",
        create_ms=1,
        update_ms=1,
        pending_op=Operation.AUTHORIZE,
        pending_ref="m-pay_x",
        pending_amount=amount,
        busy="m-pay_x",
        version=1,
    )


def step(p: Payment, op: Operation, amount: int, result: ChannelResult, ref: str = "r") -> Payment:
    return settle(p, op=op, reference=ref, amount=amount, result=result, now_ms=2)


def test_authorize_outcomes():
    assert step(new(), Operation.AUTHORIZE, 1000, APPROVED).status is Status.AUTHORIZED
    captured = step(new(auto=True), Operation.AUTHORIZE, 1000, APPROVED)
    assert (captured.status, captured.captured, captured.upstream_reference) == (
        Status.CAPTURED,
        1000,
        "rrn1",
    )
    declined = step(new(), Operation.AUTHORIZE, 1000, DECLINED)
    assert declined.status is Status.DECLINED
    assert declined.decline is not None and declined.decline.raw_code == "51"
    assert step(new(), Operation.AUTHORIZE, 1000, NOT_FOUND).status is Status.FAILED
    pending = step(new(), Operation.AUTHORIZE, 1000, PENDING)
    assert (pending.status, pending.pending_op, pending.busy) == (
        Status.PENDING,
        Operation.AUTHORIZE,
        "r",
    )


def test_every_settle_bumps_the_version_and_appends_history():
    p = step(new(), Operation.AUTHORIZE, 1000, PENDING)
    p = step(p, Operation.AUTHORIZE, 1000, APPROVED)
    assert p.version == 3
    assert [e.status for e in p.events] == [Status.PENDING, Status.AUTHORIZED]
    assert not p.busy and p.pending_op is None


def test_capture_void_and_refund_rules():
    auth = step(new(), Operation.AUTHORIZE, 1000, APPROVED)
    assert check(auth, Operation.CAPTURE, None) == 1000
    assert check(auth, Operation.CAPTURE, 400) == 400
    with pytest.raises(IllegalOperation) as e:
        check(auth, Operation.CAPTURE, 1001)
    assert e.value.kind == "amount"
    with pytest.raises(IllegalOperation):
        check(auth, Operation.REFUND, None)
    cap = step(auth, Operation.CAPTURE, 400, APPROVED)
    assert (cap.status, cap.captured) == (Status.CAPTURED, 400)
    for op in (Operation.CAPTURE, Operation.VOID):
        with pytest.raises(IllegalOperation):
            check(cap, op, None)
    r1 = step(cap, Operation.REFUND, 150, APPROVED, ref="rf1")
    assert (r1.status, r1.refunded) == (Status.PARTIALLY_REFUNDED, 150)
    assert check(r1, Operation.REFUND, None) == 250
    with pytest.raises(IllegalOperation):
        check(r1, Operation.REFUND, 251)
    r2 = step(r1, Operation.REFUND, 250, APPROVED, ref="rf2")
    assert (r2.status, r2.refunded) == (Status.REFUNDED, 400)
    assert [(r.id, r.status) for r in r2.refunds] == [
        ("rf1", Status.REFUNDED),
        ("rf2", Status.REFUNDED),
    ]
    voided = step(auth, Operation.VOID, 1000, APPROVED)
    assert voided.status is Status.VOIDED


def test_a_declined_or_unknown_follow_up_keeps_or_restores_the_prior_status():
    auth = step(new(), Operation.AUTHORIZE, 1000, APPROVED)
    assert step(auth, Operation.CAPTURE, 1000, DECLINED).status is Status.AUTHORIZED
    unknown = step(auth, Operation.CAPTURE, 1000, PENDING)
    assert (unknown.status, unknown.prior_status) == (Status.PENDING, Status.AUTHORIZED)
    with pytest.raises(IllegalOperation):
        check(unknown, Operation.VOID, None)
    assert step(unknown, Operation.CAPTURE, 1000, NOT_FOUND).status is Status.AUTHORIZED
    assert step(unknown, Operation.CAPTURE, 1000, APPROVED).status is Status.CAPTURED
    cap = step(auth, Operation.CAPTURE, 1000, APPROVED)
    pending_refund = step(cap, Operation.REFUND, 300, PENDING, ref="rf")
    assert pending_refund.refunds[-1].status is Status.PENDING
    done = step(pending_refund, Operation.REFUND, 300, APPROVED, ref="rf")
    assert (done.status, done.refunded, len(done.refunds)) == (Status.PARTIALLY_REFUNDED, 300, 1)


def test_a_cascade_keeps_the_decline_and_hands_the_payment_on_under_a_new_reference():
    p = new()
    declined, moved = cascade(p, ref="m-pay_x", result=DECLINED, to="next", now_ms=5)
    assert declined.status is Status.DECLINED and declined.channel == "c"
    assert moved.status is Status.PENDING and moved.channel == "next"
    assert moved.pending_op is Operation.AUTHORIZE and moved.pending_ref == "m-pay_x-a2"
    assert moved.busy == "m-pay_x-a2" and moved.pending_idem == p.pending_idem
    assert moved.decline is None and moved.version == p.version + 1
    assert [(e.status, e.reference) for e in moved.events] == [(Status.DECLINED, "m-pay_x")]
    approved = settle(moved, op=Operation.AUTHORIZE, reference="m-pay_x-a2", amount=1000,
                      result=APPROVED, now_ms=6)  # fmt: skip
    assert approved.status is Status.AUTHORIZED and approved.channel == "next"
    assert [e.reference for e in approved.events] == ["m-pay_x", "m-pay_x-a2"]


def test_a_cascade_nobody_took_ends_with_the_first_decline():
    _, moved = cascade(new(), ref="m-pay_x", result=DECLINED, to="next", now_ms=5)
    unsent, final = unreachable_after_cascade(
        moved, ref="m-pay_x-a2", declined_on="c", result=DECLINED, now_ms=6
    )
    assert unsent.status is Status.FAILED and unsent.channel == "next"
    assert final.status is Status.DECLINED and final.channel == "c"
    assert final.decline == DECLINED.decline and final.pending_op is None and not final.busy
