"""Store-and-forward: reversals and completion advices repeated until the host acknowledges them.

An entry is journaled before its first sending and survives restarts. Attempt n is sent with
`sequence[min(n, len - 1)]` as MTI, so a reversal goes 0400, then 0420, then 0421 for every
repeat; a completion goes 0220 then 0221. Entries are independent: each is sent by its own
task when due, at most `concurrency` at a time, so one that never gets an answer waits out
its own timeouts and backoff without holding the others. After `max_attempts` sendings
without a definitive answer an entry becomes an exception record, kept for people to settle.
The card number is never stored: a first 0400 sent from this process's memory may carry DE2,
every later sending goes without it and the host finds the original by DE90, DE11 and DE37.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.card.client import backoff_delay
from adapters.card.journal import Journal
from adapters.card.spec import Message
from adapters.sdk.errors import InvalidRequestError, OutcomeUnknownError, UpstreamUnavailableError

log = logging.getLogger(__name__)

QUEUED = "queued"
DONE = "done"
EXCEPTION = "exception"

REVERSAL = "reversal"
COMPLETION = "completion"
REVERSAL_MTIS = ("0400", "0420", "0421")
REVERSAL_ADVICE_MTIS = ("0420", "0421")
COMPLETION_REPEAT_MTIS = ("0221",)


class Verdict(enum.Enum):
    """What the owner makes of an answer to an entry."""

    DONE = "done"  # acknowledged: the entry is finished
    RETRY = "retry"  # answered, but the host asks to try again later
    EXCEPTION = "exception"  # refused for good: a person must look at it


@dataclass(slots=True)
class SafEntry:
    """One message to deliver. `fields` holds everything but MTI and DE7 (and never DE2)."""

    id: str
    kind: str
    reference: str  # the operation whose outcome this entry decides
    fields: dict[str, str]
    sequence: list[str]
    sent: int = 0
    state: str = QUEUED
    next_at: float = 0.0
    last_error: str = ""
    created_at: float = dataclasses.field(default_factory=time.time)

    @property
    def mti(self) -> str:
        return self.sequence[min(self.sent, len(self.sequence) - 1)]

    def to_entry(self) -> dict[str, Any]:
        return {"kind": "saf", "entry": dataclasses.asdict(self)}

    @classmethod
    def from_entry(cls, data: dict[str, Any]) -> SafEntry:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True, slots=True)
class SafConfig:
    """Retry policy, in seconds; `max_attempts` counts sendings that got no usable answer."""

    retry_base: float = 1.0
    retry_cap: float = 60.0
    max_attempts: int = 20
    concurrency: int = 8
    response_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_base <= self.retry_cap:
            raise ValueError("saf retry_base: must be positive and at most retry_cap")
        if self.max_attempts < 1:
            raise ValueError("saf max_attempts: at least 1")
        if self.concurrency < 1:
            raise ValueError("saf concurrency: at least 1")


Sender = Callable[[Message, float], Awaitable[Message]]
Judge = Callable[[SafEntry, str, Message], Awaitable[Verdict]]  # entry, MTI sent, answer
GiveUp = Callable[[SafEntry], Awaitable[None]]


class SafQueue:
    """The queue and its delivery loop."""

    def __init__(
        self,
        *,
        journal: Journal,
        config: SafConfig,
        send: Sender,
        judge: Judge,
        give_up: GiveUp,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._journal = journal
        self._config = config
        self._send = send
        self._judge = judge
        self._give_up = give_up
        self._clock = clock
        self._entries: dict[str, SafEntry] = {}
        self._memory: dict[str, Message] = {}
        self._enqueuing: set[str] = set()
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    def load(self, entries: list[dict[str, Any]]) -> None:
        for item in entries:
            if item.get("kind") == "saf":
                entry = SafEntry.from_entry(item["entry"])
                self._entries[entry.id] = entry

    def live(self) -> list[SafEntry]:
        """Entries still to deliver and exception records (what compaction keeps)."""
        return [e for e in self._entries.values() if e.state != DONE]

    def get(self, entry_id: str) -> SafEntry | None:
        return self._entries.get(entry_id)

    def queued(self) -> int:
        return sum(1 for e in self._entries.values() if e.state == QUEUED)

    async def enqueue(self, entry: SafEntry, memory: Message | None = None) -> None:
        """Journal the entry, then deliver it as soon as possible. An existing id is kept."""
        if entry.id in self._entries or entry.id in self._enqueuing:
            return
        # Durable before it can be sent: the delivery loop only sees it once journaled.
        self._enqueuing.add(entry.id)
        try:
            await self._journal.append(entry.to_entry())
        finally:
            self._enqueuing.discard(entry.id)
        self._entries[entry.id] = entry
        if memory:
            self._memory[entry.id] = memory
        self._wake.set()

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="card-saf")

    async def stop(self) -> None:
        tasks = [t for t in (self._loop_task, *self._inflight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loop_task = None
        self._inflight.clear()
        self._memory.clear()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = time.time()
            waiting = [
                e
                for e in self._entries.values()
                if e.state == QUEUED and e.id not in self._inflight
            ]
            for entry in sorted(waiting, key=lambda e: e.next_at):
                if entry.next_at > now or len(self._inflight) >= self._config.concurrency:
                    break
                self._inflight[entry.id] = asyncio.create_task(self._deliver(entry))
            later = [e.next_at for e in waiting if e.id not in self._inflight]
            timeout = max(0.0, min(later) - now) if later else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _deliver(self, entry: SafEntry) -> None:
        try:
            await self._attempt(entry)
        finally:
            self._inflight.pop(entry.id, None)
            self._wake.set()

    async def _attempt(self, entry: SafEntry) -> None:
        doc: Message = {**entry.fields, "t": entry.mti, "7": self._clock().strftime("%m%d%H%M%S")}
        if entry.sent == 0:
            doc.update(self._memory.get(entry.id, {}))
        try:
            answer = await self._send(doc, self._config.response_timeout)
        except UpstreamUnavailableError as exc:
            # Not sent: no attempt spent, but wait before trying the connection again.
            entry.last_error = str(exc)
            entry.next_at = time.time() + self._backoff(entry.sent)
            return
        except (OutcomeUnknownError, InvalidRequestError) as exc:
            self._memory.pop(entry.id, None)
            entry.sent += 1
            await self._failed(entry, str(exc))
            return
        self._memory.pop(entry.id, None)
        verdict = await self._judge(entry, doc["t"], answer)
        entry.sent += 1
        if verdict is Verdict.DONE:
            entry.state = DONE
            log.info(
                "%s %s acknowledged after %d sendings", entry.kind, entry.reference, entry.sent
            )
            await self._journal.append(entry.to_entry())
        elif verdict is Verdict.RETRY:
            await self._failed(entry, f"answered {answer.get('39', '??')}, to be repeated")
        else:
            await self._exception(entry, f"refused with {answer.get('39', '??')}")

    async def _failed(self, entry: SafEntry, reason: str) -> None:
        entry.last_error = reason
        if entry.sent >= self._config.max_attempts:
            await self._exception(entry, f"{reason}; retry budget of {entry.sent} spent")
            return
        entry.next_at = time.time() + self._backoff(entry.sent)
        log.warning(
            "%s %s not acknowledged (%s), repeat %d due",
            entry.kind,
            entry.reference,
            reason,
            entry.sent,
        )
        await self._journal.append(entry.to_entry())

    async def _exception(self, entry: SafEntry, reason: str) -> None:
        entry.state = EXCEPTION
        entry.last_error = reason
        log.error("%s %s moved to the exception queue: %s", entry.kind, entry.reference, reason)
        await self._journal.append(entry.to_entry())
        await self._give_up(entry)

    def _backoff(self, attempt: int) -> float:
        # At least a tenth of the base, so a dead host is not spun on.
        delay = backoff_delay(attempt, self._config.retry_base, self._config.retry_cap)
        return max(self._config.retry_base / 10, delay)
