"""How answers settle records: direct answers, and late ones from the store-and-forward queue."""

from __future__ import annotations

import logging

from adapters.card import mapping, saf
from adapters.card.ledger import (
    APPROVED,
    DECLINED,
    PENDING,
    REVERSAL_DONE,
    REVERSAL_NONE,
    SENT,
    Ledger,
    OpRecord,
)
from adapters.card.spec import Message
from adapters.sdk.adapter import EventSink
from adapters.sdk.errors import InvalidResponseError
from adapters.sdk.types import ChannelEvent, DeclineCode

log = logging.getLogger(__name__)

REVERSED_MESSAGE = "no answer in time; the acquirer acknowledged its reversal"


class Settler:
    """Writes outcomes into the ledger and announces the ones the caller saw as PENDING."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.events: EventSink | None = None

    def apply(self, record: OpRecord, reply: mapping.Reply) -> None:
        """Record a definitive answer (approved or a known decline)."""
        record.raw_code = reply.code
        if reply.verdict is mapping.Verdict.APPROVED:
            record.state = APPROVED
            record.auth_id = reply.auth_id or record.auth_id
            record.message = "approved"
        else:
            record.state = DECLINED
            record.decline = (reply.decline or DeclineCode.PROCESSING_ERROR).name
            record.message = f"declined by the acquirer ({reply.code})"

    @staticmethod
    def release(void: OpRecord) -> None:
        """A void whose authorization is reversed: it succeeded."""
        void.state = APPROVED
        void.raw_code = mapping.APPROVED
        void.message = "authorization reversed"

    async def reversed(self, reference: str) -> None:
        """The host acknowledged the reversal of `reference`: settle it and its voids."""
        original = self._ledger.get(reference)
        changed: list[OpRecord] = []
        announce: list[OpRecord] = []
        if original is not None:
            original.reversal = REVERSAL_DONE
            if original.state in (PENDING, SENT):
                if original.state == PENDING:
                    announce.append(original)
                original.state = DECLINED
                original.raw_code = mapping.RESPONSE_TOO_LATE
                original.decline = DeclineCode.ISSUER_UNAVAILABLE.name
                original.message = REVERSED_MESSAGE
            changed.append(original)
        for void in self._ledger.awaiting(reference):
            if void.state == PENDING:
                announce.append(void)
            self.release(void)
            changed.append(void)
        if changed:
            await self._ledger.save(*changed)
        self._announce(announce)

    async def judge(self, entry: saf.SafEntry, mti: str, answer: Message) -> saf.Verdict:
        """Decide what an answer to a SAF entry (sent as `mti`) means, and settle it."""
        try:
            reply = mapping.read_reply({**entry.fields, "t": mti}, answer)
        except InvalidResponseError as exc:
            log.error("%s %s: untrustworthy answer (%s)", entry.kind, entry.reference, exc)
            return saf.Verdict.RETRY
        if reply.code in mapping.TRANSIENT or reply.verdict is mapping.Verdict.UNKNOWN:
            return saf.Verdict.RETRY
        if entry.kind == saf.REVERSAL:
            return await self._judge_reversal(entry, reply)
        return await self._judge_completion(entry, reply)

    async def _judge_reversal(self, entry: saf.SafEntry, reply: mapping.Reply) -> saf.Verdict:
        if reply.code in (mapping.APPROVED, mapping.UNABLE_TO_LOCATE_ORIGINAL):
            await self.reversed(entry.reference)
            return saf.Verdict.DONE
        original = self._ledger.get(entry.reference)
        if original is None or original.state != APPROVED:
            # A timed-out authorization the host will not reverse may stand approved upstream:
            # only a person can settle that.
            return saf.Verdict.EXCEPTION
        # A void the host refuses for good (for example 12, already captured).
        original.reversal = REVERSAL_NONE
        voids = self._ledger.awaiting(entry.reference)
        for void in voids:
            self.apply(void, reply)
        await self._ledger.save(original, *voids)
        self._announce(voids)
        return saf.Verdict.DONE

    async def _judge_completion(self, entry: saf.SafEntry, reply: mapping.Reply) -> saf.Verdict:
        capture = self._ledger.get(entry.reference)
        if capture is None or capture.state not in (PENDING, SENT):
            return saf.Verdict.DONE
        self.apply(capture, reply)
        changed = [capture]
        original = self._ledger.get(capture.original_reference)
        if original is not None and capture.state == DECLINED:
            original.captured = 0
            changed.append(original)
        await self._ledger.save(*changed)
        self._announce([capture])
        return saf.Verdict.DONE

    async def give_up(self, entry: saf.SafEntry) -> None:
        """The retry budget is spent: leave the records PENDING, saying why."""
        message = f"{entry.kind} not acknowledged ({entry.last_error}); in the exception queue"
        records = [r for r in (self._ledger.get(entry.reference),) if r is not None]
        if entry.kind == saf.REVERSAL:
            records += self._ledger.awaiting(entry.reference)
        for record in records:
            if record.state in (PENDING, SENT):
                record.state = PENDING
                record.message = message
        await self._ledger.save(*records)

    def _announce(self, records: list[OpRecord]) -> None:
        if self.events is None:
            return
        for record in records:
            self.events.publish(ChannelEvent(record.reference, record.op, record.result()))
