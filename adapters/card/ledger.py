"""The card channel's record of every reference it sent and how it ended (never card data)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from adapters.card.journal import Journal
from adapters.sdk.types import DeclineCode, Money, OperationResult, OperationType

# Record states. SENT: on the wire, no answer yet (after a crash: unknown). PENDING: the answer
# never came or could not be trusted, and an advice or reversal is on its way.
SENT = "SENT"
PENDING = "PENDING"
APPROVED = "APPROVED"
DECLINED = "DECLINED"

# The reversal state of an authorization, sale or refund.
REVERSAL_NONE = ""
REVERSAL_PENDING = "pending"
REVERSAL_DONE = "done"


@dataclass(slots=True)
class OpRecord:
    """One operation as sent: enough to answer Inquire and to refer to it later (DE90, DE37)."""

    reference: str
    operation: str  # an OperationType name
    state: str
    mti: str
    de3: str
    stan: str
    de7: str
    local_time: str
    local_date: str
    rrn: str
    amount: int
    currency: str
    original_reference: str = ""
    auth_id: str = ""
    raw_code: str = ""
    decline: str = ""  # a DeclineCode name when DECLINED
    message: str = ""
    captured: int = 0  # authorizations: minor units captured so far (a sale: all of it)
    refunded: int = 0
    reversal: str = REVERSAL_NONE
    awaits: str = ""  # a void: the reference whose reversal decides it
    created_at: float = dataclasses.field(default_factory=time.time)

    @property
    def op(self) -> OperationType:
        return OperationType[self.operation]

    def result(self) -> OperationResult:
        """The outcome as the switch sees it."""
        if self.state == APPROVED:
            return OperationResult.approved(
                raw_code=self.raw_code,
                message=self.message,
                upstream_reference=self.rrn,
                authorization_code=self.auth_id,
                approved_amount=Money(self.amount, self.currency),
            )
        if self.state == DECLINED:
            return OperationResult.declined(
                DeclineCode[self.decline],
                raw_code=self.raw_code,
                message=self.message,
                upstream_reference=self.rrn,
            )
        return OperationResult.pending(
            self.message or "sent to the acquirer, outcome not known yet",
            upstream_reference=self.rrn,
        )

    def to_entry(self) -> dict[str, Any]:
        return {"kind": "op", **dataclasses.asdict(self)}

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> OpRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in entry.items() if k in names})


class Ledger:
    """References and their records: in memory for reading, journaled on every change."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._records: dict[str, OpRecord] = {}

    def load(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            if entry.get("kind") == "op":
                record = OpRecord.from_entry(entry)
                self._records[record.reference] = record
            elif entry.get("kind") == "forget":
                self._records.pop(str(entry.get("reference")), None)

    def get(self, reference: str) -> OpRecord | None:
        return self._records.get(reference)

    async def save(self, *records: OpRecord) -> None:
        """Keep the records and return once they are durable (one write for all of them)."""
        if not records:
            return
        for record in records:
            self._records[record.reference] = record
        await self._journal.append(*(r.to_entry() for r in records))

    async def forget(self, reference: str) -> None:
        """Drop a reference that certainly never reached the host, so it may be sent again."""
        self._records.pop(reference, None)
        await self._journal.append({"kind": "forget", "reference": reference})

    def __iter__(self) -> Iterator[OpRecord]:
        return iter(list(self._records.values()))

    def last_stan(self) -> int:
        """The STAN of the most recently created record, so a restart does not reuse it."""
        latest = max(self._records.values(), key=lambda r: r.created_at, default=None)
        return int(latest.stan) if latest is not None else 0

    def awaiting(self, reference: str) -> list[OpRecord]:
        """Voids whose outcome waits on the reversal of `reference`."""
        return [
            r
            for r in self._records.values()
            if r.awaits == reference and r.state in (SENT, PENDING)
        ]
