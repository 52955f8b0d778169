"""Unknown outcomes: queue the reversal or repeated advice, and re-queue them after a restart."""

from __future__ import annotations

import logging

from adapters.card import mapping, saf
from adapters.card.ledger import (
    PENDING,
    REVERSAL_DONE,
    REVERSAL_PENDING,
    SENT,
    Ledger,
    OpRecord,
)
from adapters.card.settle import Settler
from adapters.card.spec import Message
from adapters.sdk.types import Money, OperationType

log = logging.getLogger(__name__)


def reversal_entry(
    original: OpRecord, acceptor: mapping.Acceptor, sequence: tuple[str, ...]
) -> saf.SafEntry:
    """The SAF entry that reverses `original` (one per original, whoever asked for it)."""
    return saf.SafEntry(
        id=f"reversal:{original.reference}",
        kind=saf.REVERSAL,
        reference=original.reference,
        fields=mapping.reversal(original, acceptor),
        sequence=list(sequence),
    )


def completion_entry(record: OpRecord, doc: Message) -> saf.SafEntry:
    """The SAF entry that repeats a completion (0220) as 0221 until it is answered."""
    return saf.SafEntry(
        id=f"completion:{record.reference}",
        kind=saf.COMPLETION,
        reference=record.reference,
        fields={k: v for k, v in doc.items() if k not in ("t", "7", "2")},
        sequence=list(saf.COMPLETION_REPEAT_MTIS),
    )


class Recovery:
    """Puts what is unsettled into the store-and-forward queue."""

    def __init__(
        self, *, ledger: Ledger, queue: saf.SafQueue, settler: Settler, acceptor: mapping.Acceptor
    ) -> None:
        self._ledger = ledger
        self._queue = queue
        self._settler = settler
        self._acceptor = acceptor

    async def reverse(self, record: OpRecord, reason: str, memory: Message | None) -> None:
        """An authorization, sale or refund whose outcome is unknown: PENDING, and reversed.

        `memory` (DE2) goes with the first 0400 only and is never journaled.
        """
        record.state = PENDING
        record.reversal = REVERSAL_PENDING
        record.message = "no usable answer from the acquirer; it is being reversed"
        await self._ledger.save(record)
        entry = reversal_entry(record, self._acceptor, saf.REVERSAL_MTIS)
        await self._queue.enqueue(entry, memory)
        log.warning(
            "%s %s outcome unknown (%s): reversal queued",
            record.operation,
            record.reference,
            reason,
        )

    async def recover(self) -> None:
        """After a restart: whatever was in flight or unsettled gets its SAF entry back."""
        for record in self._ledger:
            if record.state not in (SENT, PENDING):
                continue
            op = record.op
            if op in (OperationType.AUTHORIZE, OperationType.REFUND):
                if record.state == SENT or self._queue.get(f"reversal:{record.reference}") is None:
                    await self.reverse(record, "in flight at the last stop", None)
            elif op is OperationType.CAPTURE:
                await self._recover_capture(record)
            elif op is OperationType.VOID:
                await self._recover_void(record)

    async def _recover_capture(self, record: OpRecord) -> None:
        record.state = PENDING
        original = self._ledger.get(record.original_reference)
        if original is not None:
            times = {"7": record.de7, "12": record.local_time, "13": record.local_date}
            amount = Money(record.amount, record.currency)
            doc = mapping.completion(
                original, amount, stan=record.stan, times=times, acceptor=self._acceptor
            )
            await self._queue.enqueue(completion_entry(record, doc))
        await self._ledger.save(record)

    async def _recover_void(self, record: OpRecord) -> None:
        record.state = PENDING
        await self._ledger.save(record)
        original = self._ledger.get(record.awaits)
        if original is None:
            return
        if original.reversal == REVERSAL_DONE:
            await self._settler.reversed(original.reference)
        elif self._queue.get(f"reversal:{original.reference}") is None:
            original.reversal = REVERSAL_PENDING
            await self._ledger.save(original)
            entry = reversal_entry(original, self._acceptor, saf.REVERSAL_ADVICE_MTIS)
            await self._queue.enqueue(entry)
