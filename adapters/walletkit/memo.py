"""What a wallet adapter remembers per operation reference: first final results and open operations.

The memo makes a repeated request with the same reference answer the first result without a
second upstream call, and keeps the list of operations whose outcome is still unknown so that a
background watcher (or a notification) can settle them and publish the news exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from adapters.sdk.errors import InvalidRequestError, UpstreamUnavailableError
from adapters.sdk.types import (
    InquireRequest,
    Money,
    OperationResult,
    OperationStatus,
    OperationType,
)

log = logging.getLogger(__name__)

FINAL = frozenset({OperationStatus.APPROVED, OperationStatus.DECLINED})
# The raw code of an operation the platform answered as made and its query does not show.
MADE_NOT_SHOWN = "MADE_NOT_SHOWN"
# The raw code of an operation sent whose confirming call (a query, a cancel) could not be sent.
NOT_CONFIRMED = "SENT_NOT_CONFIRMED"


@dataclass(frozen=True, slots=True)
class OpenOperation:
    """An operation that may have reached the upstream and whose outcome is not known yet."""

    reference: str
    operation: OperationType
    original_reference: str
    since: float
    # What was asked (the payment's or the refund's amount), to hold the platform's word to.
    amount: Money | None = None
    # The platform answered it as made, but its query has not shown it yet: money may have
    # moved, so the platform's "no record" never makes it NOT_FOUND, however old it is.
    answered_made: bool = False


Flow = Callable[[], Awaitable[OperationResult]]


class _Calls:
    """How many upstream calls the operation `OperationMemo.once` is running has begun."""

    __slots__ = ("begun",)

    def __init__(self) -> None:
        self.begun = 0


# The operation `once` is running in this task, if any: set there, counted by `upstream_call`.
_running: contextvars.ContextVar[_Calls | None] = contextvars.ContextVar(
    "walletkit_running_operation", default=None
)


def upstream_call() -> None:
    """Note that the operation being run (if any) begins one more upstream call.

    Every call a wallet flow makes to the platform notes itself here just before it goes out,
    so that `OperationMemo.once` can tell a request that never left (its first call could not
    be sent) from one whose follow-up (a confirming query, a cancel) could not be sent after
    the request itself had left: only the first is "certainly not sent"."""
    calls = _running.get()
    if calls is not None:
        calls.begun += 1


class OpenJournal(Protocol):
    """Where open operations are also kept, so that a restarted adapter still knows them."""

    def opened(self, op: OpenOperation) -> None:
        """Note an operation about to leave (OSError if it cannot be written)."""

    def closed(self, reference: str) -> None:
        """Note that the operation under `reference` is no longer open (never raises)."""

    async def durable(self) -> None:
        """Return once every note so far is on disk (OSError if it cannot be)."""


class OperationMemo:
    """Per-reference locks, the first final result per reference, and the open operations."""

    def __init__(
        self, *, capacity: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._capacity = capacity
        self._clock = clock
        self._final: OrderedDict[str, OperationResult] = OrderedDict()
        # Open operations are bounded too: forgetting the oldest is safe, since a repeat then
        # goes to the upstream again with the same reference, which the upstream deduplicates.
        self._open: OrderedDict[str, OpenOperation] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiters: dict[str, int] = {}
        self._journal: OpenJournal | None = None

    def restore(self, open_operations: list[OpenOperation], journal: OpenJournal) -> None:
        """Take back the operations a journal kept from before a restart, and keep it from now."""
        for op in open_operations[-self._capacity :]:
            self._open[op.reference] = op
        self._journal = journal

    @contextlib.asynccontextmanager
    async def exclusive(self, reference: str) -> AsyncIterator[None]:
        """Hold the reference's lock, so concurrent repeats wait for the first and reuse it."""
        lock = self._locks.setdefault(reference, asyncio.Lock())
        self._waiters[reference] = self._waiters.get(reference, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiters[reference] -= 1
            if self._waiters[reference] == 0:
                del self._waiters[reference]
                del self._locks[reference]

    def final(self, reference: str) -> OperationResult | None:
        """The first final result recorded for `reference`, if any."""
        return self._final.get(reference)

    def open(self, reference: str) -> OpenOperation | None:
        """The open operation under `reference`, if its outcome is still unknown."""
        return self._open.get(reference)

    def open_operations(self) -> list[OpenOperation]:
        return list(self._open.values())

    def begin(
        self,
        reference: str,
        operation: OperationType,
        original_reference: str,
        amount: Money | None = None,
    ) -> None:
        """Note that a request is about to leave: from now on its outcome may be unknown."""
        if reference not in self._open:
            op = OpenOperation(reference, operation, original_reference, self._clock(), amount)
            self._open[reference] = op
            while len(self._open) > self._capacity:
                self._closed(self._open.popitem(last=False)[0])
            if self._journal is not None:
                self._journal.opened(op)

    async def note_answered_made(self, reference: str) -> None:
        """Note that the platform answered the open operation under `reference` as made, and
        return once a journal (if any) has it: from now on it is never NOT_FOUND (see
        `inquire`) nor dropped for its age, until a final result settles it. A journal that
        cannot take the note is logged, not raised: the answer has come, whatever is noted."""
        op = self._open.get(reference)
        if op is None or op.answered_made:
            return
        op = dataclasses.replace(op, answered_made=True)
        self._open[reference] = op
        if self._journal is None:
            return
        try:
            self._journal.opened(op)
            await self._journal.durable()
        except OSError as exc:
            log.error(
                "could not record that the platform answered an operation as made: a restart "
                "may forget it",
                extra={"reference": reference, "why": exc.strerror or str(exc)},
            )

    def forget(self, reference: str) -> None:
        """The request certainly did not reach the upstream: nothing is open under it."""
        if self._open.pop(reference, None) is not None:
            self._closed(reference)

    def _closed(self, reference: str) -> None:
        if self._journal is not None:
            self._journal.closed(reference)

    def settle(self, reference: str, result: OperationResult) -> bool:
        """Record `result`; True only when it is the first final result (news worth publishing)."""
        if result.status not in FINAL or reference in self._final:
            return False
        if self._open.pop(reference, None) is not None:
            self._closed(reference)
        self._final[reference] = result
        while len(self._final) > self._capacity:
            self._final.popitem(last=False)
        return True

    async def once(
        self,
        reference: str,
        operation: OperationType,
        original_reference: str,
        *,
        send: Flow,
        repeat: Flow | None = None,
        amount: Money | None = None,
    ) -> OperationResult:
        """Run an operation at most once per reference.

        A repeat after a final result gets that result; a repeat while the first outcome is
        unknown runs `repeat` (say, a query) when given, else `send` again (for requests the
        upstream deduplicates). A request that certainly did not leave leaves nothing open.

        "Certainly did not leave" is an `UpstreamUnavailableError` (or `InvalidRequestError`)
        before or from the operation's first upstream call (see `upstream_call`), when nothing
        of it was sent before. Once a request of the operation has left (an earlier call of
        this flow, or the first request this one repeats), a call that cannot be sent leaves
        the outcome unknown: the answer is PENDING, and the operation stays open for Inquire
        and the poller. Raising "not sent" then would let the switch try another channel, or
        the merchant pay again, for a payment that may have been taken.
        """
        async with self.exclusive(reference):
            if (done := self.final(reference)) is not None:
                return done
            began = self.open(reference) is None
            flow = send if began or repeat is None else repeat
            if began:
                await self._begin_durably(reference, operation, original_reference, amount)
            calls = _Calls()
            running = _running.set(calls)
            try:
                result = await flow()
            except InvalidRequestError as exc:
                # Refused before this flow sent anything: nothing new left (an open operation
                # this repeats stays open).
                if calls.begun == 0:
                    if began:
                        self.forget(reference)
                    raise
                return _sent_unconfirmed(exc)
            except UpstreamUnavailableError as exc:
                if began and calls.begun <= 1:
                    self.forget(reference)
                    raise
                return _sent_unconfirmed(exc)
            finally:
                _running.reset(running)
            self.settle(reference, result)
            return result

    async def _begin_durably(
        self,
        reference: str,
        operation: OperationType,
        original_reference: str,
        amount: Money | None,
    ) -> None:
        """Begin, and when a journal keeps open operations, return once it has this one: a
        request is never sent that a restart could forget."""
        try:
            self.begin(reference, operation, original_reference, amount)
            if self._journal is not None:
                await self._journal.durable()
        except OSError as exc:
            self.forget(reference)
            raise UpstreamUnavailableError(
                f"not sent: the open operation could not be recorded ({exc.strerror or exc})"
            ) from exc

    async def inquire(
        self,
        request: InquireRequest,
        resolve: Callable[[OpenOperation], Awaitable[OperationResult]],
        *,
        unsure_for_s: float = 0.0,
        platform: str = "the platform",
    ) -> OperationResult:
        """The recorded final result, else what `resolve` finds out now (recorded if final).

        NOT_FOUND means that neither the adapter nor the upstream has a record. An operation
        this adapter sent less than `unsure_for_s` ago and heard nothing back about is one it
        has a record of, and the upstream may not show it yet (still in flight, not yet
        queryable): the upstream's NOT_FOUND is then PENDING, so that the switch asks again
        rather than fail a payment the buyer may still be charged for. One that `platform`
        answered as made (`answered_made`) is PENDING, raw code MADE_NOT_SHOWN, at any age:
        money may have moved, and only a reconciliation with the platform can say."""
        if (done := self.final(request.reference)) is not None:
            return done
        op = OpenOperation(
            request.reference,
            request.operation,
            request.original_reference,
            0.0,
            request.amount,
        )
        result = await resolve(op)
        sent = self.open(request.reference)
        if result.status is OperationStatus.NOT_FOUND and sent is not None and sent.answered_made:
            what = sent.operation.name.lower()
            return OperationResult.pending(
                f"{platform} answered this {what} as made but its query does not show it: "
                f"reconcile with {platform}",
                raw_code=MADE_NOT_SHOWN,
            )
        if (
            result.status is OperationStatus.NOT_FOUND
            and sent is not None
            and self._clock() - sent.since < unsure_for_s
        ):
            age = self._clock() - sent.since
            return OperationResult.pending(
                f"sent {age:.0f} s ago and not answered; the upstream shows no record of it yet",
                raw_code=result.raw_code,
            )
        self.settle(request.reference, result)
        return result


def _sent_unconfirmed(exc: UpstreamUnavailableError | InvalidRequestError) -> OperationResult:
    """The answer to an operation a request of which has left, whose next call failed unsent."""
    return OperationResult.pending(
        f"sent; what became of it could not be asked: outcome unknown ({exc.message})",
        raw_code=NOT_CONFIRMED,
    )
