"""The card channel's flows: each canonical operation as ISO 8583 messages, and its outcome.

    Authorize          0100/0110 (capture=false) or 0200/0210 sale (capture=true)
    Capture            0220/0230 completion, DE90 + DE37 + DE38 point at the authorization
    Void               0400/0410 reversal of the authorization
    Refund             0200/0210 with processing code 20, DE90 points at the original
    Inquire            from the ledger: the adapter's own record of every reference it sent

An operation whose answer never comes (or cannot be trusted) is PENDING and is settled by the
store-and-forward queue: an authorization, sale or refund is reversed and then ends DECLINED
(raw code 68); a completion is repeated as 0221; a void is repeated as 0420/0421. Each
settlement is published as a ChannelEvent. A reference is sent at most once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from adapters.card import mapping, recovery, saf
from adapters.card.client import AcquirerClient, StanCounter
from adapters.card.config import CardConfig
from adapters.card.journal import Journal
from adapters.card.ledger import (
    APPROVED,
    DECLINED,
    PENDING,
    REVERSAL_DONE,
    REVERSAL_NONE,
    REVERSAL_PENDING,
    SENT,
    Ledger,
    OpRecord,
)
from adapters.card.settle import Settler
from adapters.card.spec import Message
from adapters.sdk.adapter import EventSink
from adapters.sdk.errors import (
    InvalidRequestError,
    InvalidResponseError,
    NotSupportedError,
    OutcomeUnknownError,
    UpstreamUnavailableError,
)
from adapters.sdk.types import (
    AuthorizeRequest,
    Capabilities,
    CaptureRequest,
    Card,
    DeclineCode,
    InquireRequest,
    Money,
    OperationResult,
    OperationStatus,
    OperationType,
    PaymentMethodType,
    RefundRequest,
    VoidRequest,
)

log = logging.getLogger(__name__)

# What `_ask` raises when the message certainly did not leave: no connection, or a message the
# client could not encode (it encodes before it writes). Its record is forgotten by then.
_NOT_SENT = (UpstreamUnavailableError, InvalidRequestError)

_REFERENCE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class CardAdapter:
    """An ISO 8583 acquirer channel; implements adapters.sdk.ChannelAdapter."""

    def __init__(
        self, config: CardConfig, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._config = config
        self._acceptor = config.acceptor
        self._clock = clock
        self._journal = Journal(config.saf_file, fsync=config.fsync)
        self._ledger = Ledger(self._journal)
        self._stan = StanCounter()
        self._client = AcquirerClient(config.client(), stan=self._stan, clock=clock)
        self._settler = Settler(self._ledger)
        self._saf = saf.SafQueue(
            journal=self._journal,
            config=config.saf(),
            send=self._client.request,
            judge=self._settler.judge,
            give_up=self._settler.give_up,
            clock=clock,
        )
        self._recovery = recovery.Recovery(
            ledger=self._ledger, queue=self._saf, settler=self._settler, acceptor=self._acceptor
        )
        self._inflight: dict[str, asyncio.Task[OperationResult]] = {}
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def capabilities(self) -> Capabilities:
        return Capabilities(
            name="card",
            payment_methods=frozenset({PaymentMethodType.CARD}),
            currencies=frozenset(mapping.CURRENCIES),
            min_amount_minor=1,
            max_amount_minor=mapping.MAX_AMOUNT_MINOR,
        )

    async def start(self, events: EventSink) -> None:
        self._settler.events = events
        entries = self._journal.load()
        self._ledger.load(entries)
        self._saf.load(entries)
        # Compaction: keep every record (Inquire needs them) and the SAF entries still open.
        self._journal.rewrite(
            [*(r.to_entry() for r in self._ledger), *(e.to_entry() for e in self._saf.live())]
        )
        self._journal.open()
        self._stan.reseed(self._ledger.last_stan())
        await self._recovery.recover()
        await self._client.start()
        await self._saf.start()
        await self._client.wait_ready(self._config.connect_timeout)

    async def stop(self) -> None:
        await self._saf.stop()
        await self._client.stop()
        # Operations in flight fail with the connections and journal their unknown outcome.
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)
        await self._journal.close()

    # -- operations -------------------------------------------------------------------------

    async def authorize(self, request: AuthorizeRequest) -> OperationResult:
        card = request.payment_method
        if not isinstance(card, Card):
            raise NotSupportedError("the card channel takes card payments only")
        _check_reference(request.reference)
        mapping.card_fields(card)
        mapping.amount_fields(request.amount)
        return await self._once(request.reference, lambda: self._authorize(request, card))

    async def capture(self, request: CaptureRequest) -> OperationResult:
        _check_reference(request.reference)
        mapping.amount_fields(request.amount)
        return await self._once(request.reference, lambda: self._capture(request))

    async def void(self, request: VoidRequest) -> OperationResult:
        _check_reference(request.reference)
        return await self._once(request.reference, lambda: self._void(request))

    async def refund(self, request: RefundRequest) -> OperationResult:
        _check_reference(request.reference)
        mapping.amount_fields(request.amount)
        return await self._once(request.reference, lambda: self._refund(request))

    async def inquire(self, request: InquireRequest) -> OperationResult:
        record = self._ledger.get(request.reference)
        if record is not None:
            return record.result()
        if request.reference in self._inflight:
            return OperationResult.pending("being sent")
        return OperationResult(status=OperationStatus.NOT_FOUND, message="never sent")

    # -- flows ------------------------------------------------------------------------------

    async def _authorize(self, request: AuthorizeRequest, card: Card) -> OperationResult:
        stan, times, rrn = self._stamp()
        doc = mapping.authorization(
            request, card, stan=stan, times=times, rrn=rrn, acceptor=self._acceptor
        )
        record = self._new_record(request.reference, OperationType.AUTHORIZE, doc, request.amount)
        log.info(
            "authorize %s: %s STAN %s card %s %d %s",
            request.reference, doc["t"], stan, mapping.mask_pan(card.number),
            request.amount.amount_minor, request.amount.currency,
        )  # fmt: skip
        await self._ledger.save(record)
        try:
            reply = await self._ask(record, doc)
        except OutcomeUnknownError as exc:
            return await self._reverse_unknown(record, str(exc), {"2": card.number})
        self._settler.apply(record, reply)
        if reply.verdict is mapping.Verdict.APPROVED and doc["t"] == "0200":
            record.captured = record.amount
        await self._ledger.save(record)
        return record.result()

    async def _capture(self, request: CaptureRequest) -> OperationResult:
        async with self._lock(request.original_reference):
            original = self._ledger.get(request.original_reference)
            refusal = _follow_up_refusal(original, request.amount, "capture")
            if refusal is None and original is not None:
                if original.mti != "0100":
                    refusal = (DeclineCode.INVALID_STATE, "a sale is captured already")
                elif original.captured:
                    refusal = (DeclineCode.INVALID_STATE, "the authorization is captured already")
                elif request.amount.amount_minor > original.amount:
                    # Checked here, not left to the acquirer: not every host refuses it.
                    refusal = (DeclineCode.INVALID_AMOUNT, "capture: more than was authorized")
            if refusal is not None or original is None:
                return await self._refuse(request.reference, OperationType.CAPTURE, refusal)
            stan, times, _ = self._stamp()
            doc = mapping.completion(
                original, request.amount, stan=stan, times=times, acceptor=self._acceptor
            )
            record = self._new_record(request.reference, OperationType.CAPTURE, doc, request.amount)
            record.original_reference = original.reference
            record.auth_id = original.auth_id
            original.captured = request.amount.amount_minor  # claimed; released on a decline
            await self._ledger.save(record, original)
            try:
                reply = await self._ask(record, doc)
            except _NOT_SENT:
                original.captured = 0
                await self._ledger.save(original)
                raise
            except OutcomeUnknownError as exc:
                record.state = PENDING
                record.message = "completion not acknowledged yet; it is being repeated"
                await self._ledger.save(record)
                await self._saf.enqueue(recovery.completion_entry(record, doc))
                log.warning(
                    "capture %s outcome unknown (%s): repeating as 0221", record.reference, exc
                )
                return record.result()
            self._settler.apply(record, reply)
            if record.state != APPROVED:
                original.captured = 0
            await self._ledger.save(record, original)
            return record.result()

    async def _void(self, request: VoidRequest) -> OperationResult:
        async with self._lock(request.original_reference):
            original = self._ledger.get(request.original_reference)
            refusal = _follow_up_refusal(original, request.amount, "void", pending_ok=True)
            if original is None or (refusal is not None and original.reversal != REVERSAL_DONE):
                return await self._refuse(request.reference, OperationType.VOID, refusal)
            if original.refunded or (original.mti == "0100" and original.captured):
                refusal = (DeclineCode.INVALID_STATE, "void: captured already, refund instead")
                return await self._refuse(request.reference, OperationType.VOID, refusal)
            record = OpRecord(
                reference=request.reference, operation=OperationType.VOID.name, state=SENT,
                mti="0400", de3=original.de3, stan=original.stan,
                de7=mapping.wire_times(self._clock())["7"], local_time=original.local_time,
                local_date=original.local_date, rrn=original.rrn, amount=original.amount,
                currency=original.currency, original_reference=original.reference,
                awaits=original.reference,
            )  # fmt: skip
            if original.reversal == REVERSAL_DONE:
                # Released already (an earlier void, or the reversal of a timed-out original).
                self._settler.release(record)
                await self._ledger.save(record)
                return record.result()
            if original.state in (PENDING, SENT) or original.reversal == REVERSAL_PENDING:
                # A reversal of the original is already under way; its acknowledgement decides.
                record.state = PENDING
                record.message = "waiting for the acquirer to acknowledge the reversal"
                await self._ledger.save(record)
                return record.result()
            original.reversal = REVERSAL_PENDING
            doc = {**mapping.reversal(original, self._acceptor), "t": "0400", "7": record.de7}
            await self._ledger.save(record, original)
            try:
                reply = await self._ask(record, doc)
            except _NOT_SENT:
                original.reversal = REVERSAL_NONE
                await self._ledger.save(original)
                raise
            except OutcomeUnknownError as exc:
                record.state = PENDING
                record.message = "reversal not acknowledged yet; it is being repeated"
                await self._ledger.save(record)
                entry = recovery.reversal_entry(original, self._acceptor, saf.REVERSAL_ADVICE_MTIS)
                await self._saf.enqueue(entry)
                log.warning(
                    "void %s outcome unknown (%s): repeating as 0420", record.reference, exc
                )
                return record.result()
            if reply.code in (mapping.APPROVED, mapping.UNABLE_TO_LOCATE_ORIGINAL):
                await self._settler.reversed(original.reference)
            else:
                original.reversal = REVERSAL_NONE
                self._settler.apply(record, reply)
                await self._ledger.save(record, original)
            return record.result()

    async def _refund(self, request: RefundRequest) -> OperationResult:
        async with self._lock(request.original_reference):
            original = self._ledger.get(request.original_reference)
            refusal = _follow_up_refusal(original, request.amount, "refund")
            if refusal is None and original is not None and not original.captured:
                refusal = (DeclineCode.INVALID_STATE, "nothing has been captured")
            elif (
                refusal is None
                and original is not None
                and original.refunded + request.amount.amount_minor > original.captured
            ):
                # Checked here against this channel's own ledger, not left to the acquirer.
                left = original.captured - original.refunded
                refusal = (DeclineCode.INVALID_AMOUNT, f"refund: more than the {left} left")
            if refusal is not None or original is None:
                return await self._refuse(request.reference, OperationType.REFUND, refusal)
            stan, times, rrn = self._stamp()
            doc = mapping.refund(
                original, request.amount, stan=stan, times=times, rrn=rrn, acceptor=self._acceptor
            )
            record = self._new_record(request.reference, OperationType.REFUND, doc, request.amount)
            record.original_reference = original.reference
            await self._ledger.save(record)
            try:
                reply = await self._ask(record, doc)
            except OutcomeUnknownError as exc:
                return await self._reverse_unknown(record, str(exc), None)
            self._settler.apply(record, reply)
            if record.state == APPROVED:
                original.refunded += record.amount
            await self._ledger.save(record, original)
            return record.result()

    # -- helpers ----------------------------------------------------------------------------

    async def _ask(self, record: OpRecord, doc: Message) -> mapping.Reply:
        """Send and read the answer. Not sent (see _NOT_SENT): the record is forgotten and the
        error raised, so neither Inquire nor a restart takes it for a message on the wire.

        Raises OutcomeUnknownError for no answer, a dropped connection, an answer that cannot
        be trusted, or a response code this channel does not know.
        """
        try:
            answer = await self._client.request(doc)
        except _NOT_SENT:
            await self._ledger.forget(record.reference)
            raise
        reply = mapping.read_reply(doc, answer)
        if reply.verdict is mapping.Verdict.UNKNOWN:
            raise InvalidResponseError(f"response code {reply.code} is not known to this channel")
        return reply

    async def _reverse_unknown(
        self, record: OpRecord, reason: str, memory: Message | None
    ) -> OperationResult:
        await self._recovery.reverse(record, reason, memory)
        return record.result()

    async def _once(
        self, reference: str, run: Callable[[], Coroutine[Any, Any, OperationResult]]
    ) -> OperationResult:
        """Run an operation at most once per reference; repeats get the first result.

        The operation runs as its own task: a caller that goes away (a gRPC deadline) must
        not abandon a message already on the wire before its outcome is settled.
        """
        running = self._inflight.get(reference)
        if running is not None:
            return await asyncio.shield(running)
        record = self._ledger.get(reference)
        if record is not None:
            return record.result()
        task = asyncio.create_task(run(), name=f"card-{reference}")
        self._inflight[reference] = task
        task.add_done_callback(lambda t: self._finished(reference, t))
        return await asyncio.shield(task)

    def _finished(self, reference: str, task: asyncio.Task[OperationResult]) -> None:
        self._inflight.pop(reference, None)
        if not task.cancelled():
            task.exception()  # retrieved: the caller may have gone away

    async def _refuse(
        self, reference: str, op: OperationType, refusal: tuple[DeclineCode, str] | None
    ) -> OperationResult:
        """Decline locally (nothing is sent) and remember it, so a repeat gets the same."""
        code, message = refusal or (DeclineCode.INVALID_TRANSACTION, "unknown original")
        record = OpRecord(
            reference=reference, operation=op.name, state=DECLINED, mti="", de3="", stan="",
            de7="", local_time="", local_date="", rrn="", amount=0, currency="",
            raw_code=mapping.DE39_FOR.get(code, ""), decline=code.name, message=message,
        )  # fmt: skip
        await self._ledger.save(record)
        return record.result()

    def _stamp(self) -> tuple[str, Message, str]:
        now = self._clock()
        stan = self._client.next_stan()
        return stan, mapping.wire_times(now), mapping.retrieval_reference(now, stan)

    def _new_record(
        self, reference: str, op: OperationType, doc: Message, amount: Money
    ) -> OpRecord:
        return OpRecord(
            reference=reference, operation=op.name, state=SENT, mti=doc["t"], de3=doc["3"],
            stan=doc["11"], de7=doc["7"], local_time=doc["12"], local_date=doc["13"],
            rrn=doc["37"], amount=amount.amount_minor, currency=amount.currency,
        )  # fmt: skip

    @asynccontextmanager
    async def _lock(self, key: str) -> AsyncIterator[None]:
        """Follow-ups on one original run one at a time (they share its STAN and state)."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def _check_reference(reference: str) -> None:
    if not 1 <= len(reference) <= 64 or not set(reference) <= _REFERENCE_CHARS:
        raise InvalidRequestError([("reference", "1 to 64 characters of [A-Za-z0-9_-]")])


def _follow_up_refusal(
    original: OpRecord | None, amount: Money, what: str, *, pending_ok: bool = False
) -> tuple[DeclineCode, str] | None:
    """Why a capture, void or refund cannot be sent for `original`, or None."""
    if original is None:
        return (
            DeclineCode.INVALID_TRANSACTION,
            f"{what}: original reference unknown to the card channel",
        )
    if original.op is not OperationType.AUTHORIZE:
        return (DeclineCode.INVALID_TRANSACTION, f"{what}: the original is not an authorization")
    if amount.currency != original.currency:
        raise InvalidRequestError(
            [("amount.currency", f"must be {original.currency}, as authorized")]
        )
    if original.state == DECLINED:
        return (DeclineCode.INVALID_STATE, f"{what}: the authorization was declined")
    if original.state != APPROVED and not pending_ok:
        return (DeclineCode.INVALID_STATE, f"{what}: the authorization's outcome is not known yet")
    if original.reversal == REVERSAL_DONE and not pending_ok:
        return (DeclineCode.INVALID_STATE, f"{what}: the authorization was reversed")
    return None
