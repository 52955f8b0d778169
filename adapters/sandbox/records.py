"""The sandbox's memory of operations, kept where Python's garbage collector does not look.

The sandbox remembers up to `max_records` operations so that replays, follow-ups and inquiries
get the pretend upstream's answer. Kept as objects, half a million records are two million
objects the collector tracks, and a full collection of them stopped the worker for about
240 ms (measured 2026-11-26: 36 ms at 50,000 records, 103 ms at 200,000, 239 ms at 500,000):
every payment in flight through the sandbox waited that long, which is what the bench's open
loops at half capacity saw as 200-250 ms stalls at p99.9. A tuple holding only numbers,
strings and None is untracked by the collector after its first pass, so a settled record is
stored as such a tuple (a full collection over 500,000 of them: 2 ms) and rebuilt on the rare
read. Operations still in progress (a slow or pending authorization, with its timer and its
waiters) stay objects until they settle.
"""

from __future__ import annotations

import asyncio
import collections
import enum
from dataclasses import dataclass, field

from adapters.sdk.types import DeclineCode, Money, OperationResult, OperationStatus, OperationType


class State(enum.Enum):
    PENDING = "pending"
    DECLINED = "declined"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    VOIDED = "voided"


class Payment:
    """The pretend upstream's view of one authorization."""

    __slots__ = (
        "amount",
        "authorization_code",
        "captured",
        "refunded",
        "state",
        "upstream_reference",
    )

    def __init__(self, amount: Money, n: int) -> None:
        self.amount = amount
        self.upstream_reference = f"sbx-{n}"
        self.authorization_code = f"{n % 1_000_000:06d}"
        self.state = State.PENDING
        self.captured = 0
        self.refunded = 0


@dataclass(slots=True)
class Operation:
    """One operation by its reference: its current result and, for an authorization, the payment."""

    op: OperationType
    result: OperationResult
    payment: Payment | None = None
    # Set while a slow authorization is in progress: its callers (first and replays) await it.
    settled: asyncio.Future[OperationResult] | None = field(default=None, repr=False)


_OPS = {o.value: o for o in OperationType}
_STATUSES = {s.value: s for s in OperationStatus}
_DECLINES = {d.value: d for d in DeclineCode}
_STATES = {s.value: s for s in State}

# status, decline code, raw code, message, upstream reference, authorization code, approved
_Result = tuple[int, int | None, str, str, str, str, tuple[int, str] | None]
# amount, currency, upstream reference, authorization code, state, captured, refunded
_Payment = tuple[int, str, str, str, str, int, int]
Packed = tuple[int, _Result, _Payment | None]


def _pack_result(r: OperationResult) -> _Result:
    approved = r.approved_amount
    return (
        r.status.value,
        None if r.decline_code is None else r.decline_code.value,
        r.raw_code,
        r.message,
        r.upstream_reference,
        r.authorization_code,
        None if approved is None else (approved.amount_minor, approved.currency),
    )


def _unpack_result(p: _Result) -> OperationResult:
    status, decline, raw, message, upstream, auth, approved = p
    return OperationResult(
        status=_STATUSES[status],
        decline_code=None if decline is None else _DECLINES[decline],
        raw_code=raw,
        message=message,
        upstream_reference=upstream,
        authorization_code=auth,
        approved_amount=None if approved is None else Money(*approved),
    )


def pack(o: Operation) -> Packed:
    p = o.payment
    payment = (
        None
        if p is None
        else (
            p.amount.amount_minor,
            p.amount.currency,
            p.upstream_reference,
            p.authorization_code,
            p.state.value,
            p.captured,
            p.refunded,
        )
    )
    return (o.op.value, _pack_result(o.result), payment)


def unpack(packed: Packed) -> Operation:
    op, result, payment = packed
    o = Operation(_OPS[op], _unpack_result(result))
    if payment is not None:
        amount, currency, upstream, auth, state, captured, refunded = payment
        p = Payment.__new__(Payment)
        p.amount = Money(amount, currency)
        p.upstream_reference = upstream
        p.authorization_code = auth
        p.state = _STATES[state]
        p.captured = captured
        p.refunded = refunded
        o.payment = p
    return o


class Records:
    """Operations by reference, the oldest forgotten first beyond `max_records`.

    `get` returns an Operation the caller may change; a change is kept by `put`-ting it again.
    """

    def __init__(self, max_records: int) -> None:
        self._max = max_records
        # Ordered so that forgetting the oldest is O(1). A plain dict's `next(iter(...))` walks
        # over the slots its earlier deletions left at the front until it next resizes: past the
        # bound that was ~56 us per put at 500,000 records, half the worker's CPU per payment.
        self._settled: collections.OrderedDict[str, Packed] = collections.OrderedDict()
        self._live: dict[str, Operation] = {}

    def __len__(self) -> int:
        return len(self._settled) + len(self._live)

    def get(self, reference: str) -> Operation | None:
        live = self._live.get(reference)
        if live is not None:
            return live
        packed = self._settled.get(reference)
        return None if packed is None else unpack(packed)

    def put(self, reference: str, operation: Operation, *, live: bool = False) -> None:
        """Keep `operation`: as an object while `live` (its outcome may still change on a timer)
        or while it already is; else packed."""
        if live or reference in self._live:
            self._live[reference] = operation
            self._settled.pop(reference, None)
        else:
            self._settled[reference] = pack(operation)
            if len(self._settled) + len(self._live) > self._max:
                self._settled.popitem(last=False)

    def forget(self, reference: str) -> None:
        self._live.pop(reference, None)
        self._settled.pop(reference, None)

    def settle(self, reference: str) -> None:
        """The operation's outcome is final: pack it."""
        operation = self._live.pop(reference, None)
        if operation is not None:
            self.put(reference, operation)
