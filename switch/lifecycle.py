"""The payment state machine: which operations are legal, and what each channel answer does.

Legal: authorize on a new payment; capture and void on AUTHORIZED; refund on CAPTURED or
PARTIALLY_REFUNDED, in total at most the captured amount; capture at most the authorized amount.
The same checks run atomically in Redis (scripts/claim_followup.lua) before anything is sent;
`check` here is their reference version, used by the unit tests and by nothing on the hot path.
"""

from __future__ import annotations

from switch.model import (
    OP_AUTHORIZE,
    OP_CAPTURE,
    OP_REFUND,
    OP_VOID,
    OUTCOME_APPROVED,
    OUTCOME_DECLINED,
    OUTCOME_NOT_FOUND,
    OUTCOME_PENDING,
    STATUS_AUTHORIZED,
    STATUS_CAPTURED,
    STATUS_DECLINED,
    STATUS_FAILED,
    STATUS_PARTIALLY_REFUNDED,
    STATUS_PENDING,
    STATUS_REFUNDED,
    STATUS_VOIDED,
    ChannelResult,
    Event,
    Operation,
    Payment,
    RefundRecord,
    Status,
)

FINAL_UNKNOWN_MESSAGE = "the outcome is not known yet; the switch is asking the channel"


class IllegalOperation(Exception):
    """The operation is not legal for the payment; `kind` is 'state' or 'amount'."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def check(p: Payment, op: Operation, amount: int | None) -> int:
    """The amount the operation is for, or IllegalOperation."""
    if p.busy or p.status is STATUS_PENDING:
        raise IllegalOperation("busy", f"payment {p.id} has an operation in flight")
    if op is OP_CAPTURE or op is OP_VOID:
        if p.status is not STATUS_AUTHORIZED:
            raise IllegalOperation(
                "state", f"cannot {op.name.lower()} a payment that is {p.status.name}"
            )
        value = p.authorized if amount is None or op is OP_VOID else amount
        if value > p.authorized:
            raise IllegalOperation("amount", f"{value} is more than the authorized {p.authorized}")
        return value
    if op is OP_REFUND:
        if p.status not in (STATUS_CAPTURED, STATUS_PARTIALLY_REFUNDED):
            raise IllegalOperation("state", f"cannot refund a payment that is {p.status.name}")
        left = p.captured - p.refunded
        value = left if amount is None else amount
        if value > left:
            raise IllegalOperation("amount", f"{value} is more than the refundable {left}")
        return value
    raise IllegalOperation("state", "authorize makes a new payment")


def settle(
    p: Payment,
    *,
    op: Operation,
    reference: str,
    amount: int,
    result: ChannelResult,
    now_ms: int,
    reason: str = "",
) -> Payment:
    """The payment after the channel answered `op` (sent under `reference`) with `result`."""
    base = p.prior_status if p.status is STATUS_PENDING and p.prior_status else p.status
    event_status: Status
    # One dict literal per branch and item assignments: each update(**kw) built a dict first.
    changes: dict[str, object]
    if result.outcome is OUTCOME_PENDING:
        event_status = STATUS_PENDING
        changes = {
            "update_ms": now_ms,
            "version": p.version + 1,
            "status": STATUS_PENDING,
            "prior_status": None if op is OP_AUTHORIZE else base,
            "pending_op": op,
            "pending_ref": reference,
            "pending_amount": amount,
            "busy": reference,
            "status_message": result.message or FINAL_UNKNOWN_MESSAGE,
        }
    else:
        event_status = _final_status(p, base, op, amount, result)
        changes = {
            "update_ms": now_ms,
            "version": p.version + 1,
            "status": event_status,
            "prior_status": None,
            "pending_op": None,
            "pending_ref": "",
            "pending_amount": 0,
            "pending_idem": "",
            "busy": "",
            "status_message": _message(op, result),
        }
        if result.outcome is OUTCOME_APPROVED:
            changes.update(_approved_amounts(p, op, amount, result))
            if op is OP_AUTHORIZE:
                changes["upstream_reference"] = result.upstream_reference
                changes["authorization_code"] = result.authorization_code
        elif op is OP_AUTHORIZE and result.outcome is OUTCOME_DECLINED:
            changes["decline"] = result.decline
            changes["upstream_reference"] = result.upstream_reference
    if op is OP_REFUND:
        changes["refunds"] = _refunds(p, reference, amount, reason, result, now_ms)
    event = Event(
        operation=op,
        status=event_status,
        amount=amount,
        reference=reference,
        time_ms=now_ms,
        decline=result.decline if result.outcome is OUTCOME_DECLINED else None,
    )
    changes["events"] = (*p.events, event)
    return p.evolve_with(changes)


def cascade(
    p: Payment, *, ref: str, result: ChannelResult, to: str, now_ms: int
) -> tuple[Payment, Payment]:
    """A retryable decline of the authorization sent under `ref`: the payment as declined (for
    the journal), and as handed to channel `to` under a new reference, PENDING again."""
    declined = settle(
        p, op=OP_AUTHORIZE, reference=ref, amount=p.amount, result=result, now_ms=now_ms
    )
    tries = sum(1 for e in declined.events if e.operation is OP_AUTHORIZE)
    new_ref = f"{p.merchant_id}-{p.id}-a{tries + 1}"
    moved = declined.evolve(
        status=STATUS_PENDING,
        decline=None,
        upstream_reference="",
        channel=to,
        pending_op=OP_AUTHORIZE,
        pending_ref=new_ref,
        pending_amount=p.amount,
        busy=new_ref,
        pending_idem=p.pending_idem,
        status_message=f"declined by {p.channel} ({declined.status_message}); trying {to}",
    )
    return declined, moved


def unreachable_after_cascade(
    p: Payment, *, ref: str, declined_on: str, result: ChannelResult, now_ms: int
) -> tuple[Payment, Payment]:
    """No channel took a cascaded authorization (sent under `ref`): the payment as not sent (for
    the journal), and as it ends, DECLINED with the decline of channel `declined_on`."""
    unsent = settle(
        p,
        op=OP_AUTHORIZE,
        reference=ref,
        amount=p.amount,
        result=ChannelResult(outcome=OUTCOME_NOT_FOUND),
        now_ms=now_ms,
    )
    final = unsent.evolve(
        status=STATUS_DECLINED,
        channel=declined_on,
        decline=result.decline,
        status_message=f"{result.message or 'declined'}; no other channel could be reached",
    )
    return unsent, final


def _final_status(p: Payment, base: Status, op: Operation, amount: int, r: ChannelResult) -> Status:
    if r.outcome is OUTCOME_APPROVED:
        if op is OP_AUTHORIZE:
            return STATUS_CAPTURED if p.auto_capture else STATUS_AUTHORIZED
        if op is OP_CAPTURE:
            return STATUS_CAPTURED
        if op is OP_VOID:
            return STATUS_VOIDED
        refunded = p.refunded + amount
        return STATUS_REFUNDED if refunded >= p.captured else STATUS_PARTIALLY_REFUNDED
    if op is OP_AUTHORIZE:
        # NOT_FOUND: the channel never received it, so nothing was charged.
        return STATUS_DECLINED if r.outcome is OUTCOME_DECLINED else STATUS_FAILED
    return base


def _approved_amounts(
    p: Payment, op: Operation, amount: int, r: ChannelResult
) -> dict[str, object]:
    if op is OP_AUTHORIZE:
        value = r.approved_amount if r.approved_amount is not None else amount
        return {"authorized": value, "captured": value if p.auto_capture else 0}
    if op is OP_CAPTURE:
        return {"captured": amount}
    if op is OP_REFUND:
        return {"refunded": p.refunded + amount}
    return {}


def _message(op: Operation, r: ChannelResult) -> str:
    if r.outcome is OUTCOME_NOT_FOUND:
        return f"the channel has no record of the {op.name.lower()}; nothing was done"
    if r.outcome is OUTCOME_DECLINED:
        return r.message or f"the channel declined the {op.name.lower()}"
    return ""


def _refunds(
    p: Payment, reference: str, amount: int, reason: str, r: ChannelResult, now_ms: int
) -> tuple[RefundRecord, ...]:
    status = {
        OUTCOME_APPROVED: STATUS_REFUNDED,
        OUTCOME_PENDING: STATUS_PENDING,
        OUTCOME_DECLINED: STATUS_DECLINED,
        OUTCOME_NOT_FOUND: STATUS_FAILED,
    }[r.outcome]
    kept = [x for x in p.refunds if x.id != reference]
    earlier = next((x for x in p.refunds if x.id == reference), None)
    record = RefundRecord(
        id=reference,
        amount=amount,
        reason=earlier.reason if earlier else reason,
        status=status,
        time_ms=earlier.time_ms if earlier else now_ms,
    )
    return (*kept, record)
