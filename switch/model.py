"""The switch's own payment model: slotted dataclasses, and their flat form in a Redis hash."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field, replace


class Status(enum.Enum):
    """Where a payment stands; names match payswitch.common.v1.PaymentStatus."""

    PENDING = 1
    AUTHORIZED = 2
    CAPTURED = 3
    PARTIALLY_REFUNDED = 4
    REFUNDED = 5
    VOIDED = 6
    DECLINED = 7
    FAILED = 8


class Operation(enum.Enum):
    """An operation on a payment; names match payswitch.common.v1.OperationType."""

    AUTHORIZE = 1
    CAPTURE = 2
    VOID = 3
    REFUND = 4


class Outcome(enum.Enum):
    """How a channel answered; names match payswitch.channel.v1.OperationStatus."""

    APPROVED = 1
    DECLINED = 2
    PENDING = 3
    NOT_FOUND = 4


class MethodType(enum.Enum):
    """The kind of instrument; names match payswitch.common.v1.PaymentMethodType."""

    CARD = 1
    ALIPAY = 2
    WECHAT_PAY = 3


@dataclass(frozen=True, slots=True)
class Decline:
    code: int  # a payswitch.common.v1.DeclineCode number
    raw_code: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class ChannelResult:
    """A channel's answer to one operation, as the switch keeps it."""

    outcome: Outcome
    decline: Decline | None = None
    message: str = ""
    upstream_reference: str = ""
    authorization_code: str = ""
    approved_amount: int | None = None


@dataclass(frozen=True, slots=True)
class MethodSummary:
    """What is kept of an instrument: never a full card number, never a CVC."""

    type: MethodType
    card_bin: str = ""
    card_last4: str = ""
    expiry_month: int = 0
    expiry_year: int = 0
    fingerprint: str = ""


@dataclass(frozen=True, slots=True)
class Event:
    operation: Operation
    status: Status
    amount: int
    reference: str
    time_ms: int
    decline: Decline | None = None


@dataclass(frozen=True, slots=True)
class RefundRecord:
    id: str
    amount: int
    reason: str
    status: Status
    time_ms: int


@dataclass(frozen=True, slots=True)
class Payment:
    """One payment as the switch stores it."""

    id: str
    merchant_id: str
    status: Status
    currency: str
    amount: int
    auto_capture: bool
    method: MethodSummary
    channel: str
    create_ms: int
    update_ms: int
    merchant_reference: str = ""
    description: str = ""
    authorized: int = 0
    captured: int = 0
    refunded: int = 0
    upstream_reference: str = ""
    authorization_code: str = ""
    decline: Decline | None = None
    status_message: str = ""
    # The operation in flight or of unknown outcome: set from claim until the outcome is known.
    pending_op: Operation | None = None
    pending_ref: str = ""
    pending_amount: int = 0
    prior_status: Status | None = None
    busy: str = ""
    # The Redis key of the idempotency entry of the operation in flight, so that a resolver can
    # store its response if the switch that started it stopped before it could.
    pending_idem: str = ""
    version: int = 0
    refunds: tuple[RefundRecord, ...] = ()
    events: tuple[Event, ...] = field(default=())

    @property
    def reference(self) -> str:
        """The channel reference of the payment's authorization."""
        return self.id

    def evolve(self, **changes: object) -> Payment:
        return replace(self, **changes)  # type: ignore[arg-type]


# --- Redis hash form ----------------------------------------------------------------------------
# Scalar fields are stored one per hash field so the Lua scripts can check status and amounts;
# the history and refunds are JSON. Field names are short because every payment carries them.


def to_hash(p: Payment) -> dict[str, str]:
    m = p.method
    return {
        "id": p.id,
        "mid": p.merchant_id,
        "status": p.status.name,
        "cur": p.currency,
        "amt": str(p.amount),
        "auto": "1" if p.auto_capture else "0",
        "mtype": m.type.name,
        "bin": m.card_bin,
        "last4": m.card_last4,
        "expm": str(m.expiry_month),
        "expy": str(m.expiry_year),
        "fp": m.fingerprint,
        "channel": p.channel,
        "ctime": str(p.create_ms),
        "utime": str(p.update_ms),
        "mref": p.merchant_reference,
        "desc": p.description,
        "authorized": str(p.authorized),
        "captured": str(p.captured),
        "refunded": str(p.refunded),
        "uref": p.upstream_reference,
        "acode": p.authorization_code,
        "decline": _decline_json(p.decline),
        "smsg": p.status_message,
        "pop": p.pending_op.name if p.pending_op else "",
        "pref": p.pending_ref,
        "pamt": str(p.pending_amount),
        "prior": p.prior_status.name if p.prior_status else "",
        "busy": p.busy,
        "pidem": p.pending_idem,
        "ver": str(p.version),
        "refunds": json.dumps(
            [[r.id, r.amount, r.reason, r.status.name, r.time_ms] for r in p.refunds],
            separators=(",", ":"),
        ),
        "events": json.dumps(
            [
                [
                    e.operation.name,
                    e.status.name,
                    e.amount,
                    e.reference,
                    e.time_ms,
                    _decline_list(e.decline),
                ]
                for e in p.events
            ],
            separators=(",", ":"),
        ),
    }


def from_hash(h: dict[str, str]) -> Payment:
    return Payment(
        id=h["id"],
        merchant_id=h["mid"],
        status=Status[h["status"]],
        currency=h["cur"],
        amount=int(h["amt"]),
        auto_capture=h["auto"] == "1",
        method=MethodSummary(
            type=MethodType[h["mtype"]],
            card_bin=h.get("bin", ""),
            card_last4=h.get("last4", ""),
            expiry_month=int(h.get("expm") or 0),
            expiry_year=int(h.get("expy") or 0),
            fingerprint=h.get("fp", ""),
        ),
        channel=h.get("channel", ""),
        create_ms=int(h["ctime"]),
        update_ms=int(h["utime"]),
        merchant_reference=h.get("mref", ""),
        description=h.get("desc", ""),
        authorized=int(h.get("authorized") or 0),
        captured=int(h.get("captured") or 0),
        refunded=int(h.get("refunded") or 0),
        upstream_reference=h.get("uref", ""),
        authorization_code=h.get("acode", ""),
        decline=_decline_from(json.loads(h["decline"])) if h.get("decline") else None,
        status_message=h.get("smsg", ""),
        pending_op=Operation[h["pop"]] if h.get("pop") else None,
        pending_ref=h.get("pref", ""),
        pending_amount=int(h.get("pamt") or 0),
        prior_status=Status[h["prior"]] if h.get("prior") else None,
        busy=h.get("busy", ""),
        pending_idem=h.get("pidem", ""),
        version=int(h.get("ver") or 0),
        refunds=tuple(
            RefundRecord(id=r[0], amount=r[1], reason=r[2], status=Status[r[3]], time_ms=r[4])
            for r in json.loads(h.get("refunds") or "[]")
        ),
        events=tuple(
            Event(
                operation=Operation[e[0]],
                status=Status[e[1]],
                amount=e[2],
                reference=e[3],
                time_ms=e[4],
                decline=_decline_from(e[5]) if e[5] else None,
            )
            for e in json.loads(h.get("events") or "[]")
        ),
    )


def _decline_list(d: Decline | None) -> list[object] | None:
    return [d.code, d.raw_code, d.message] if d else None


def _decline_json(d: Decline | None) -> str:
    return json.dumps(_decline_list(d), separators=(",", ":")) if d else ""


def _decline_from(v: list[object]) -> Decline:
    return Decline(code=int(v[0]), raw_code=str(v[1]), message=str(v[2]))  # type: ignore[call-overload]
