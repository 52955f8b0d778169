"""A background task that asks the upstream about open operations and publishes what settles."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from adapters.sdk.adapter import EventSink
from adapters.sdk.errors import AdapterError
from adapters.sdk.types import ChannelEvent, OperationResult
from adapters.walletkit.memo import OpenOperation, OperationMemo

log = logging.getLogger(__name__)

Resolver = Callable[[OpenOperation], Awaitable[OperationResult]]


class PendingWatcher:
    """Every `interval` seconds, resolve each open operation younger than `give_up_after`.

    Wallet guidance is to poll an unknown payment for about a minute; an operation older than
    `give_up_after` is left to the switch's own `Inquire` and forgotten here, except one the
    platform answered as made: no longer polled, it is kept open so that an `Inquire` never
    takes the platform's "no record" of it for NOT_FOUND.
    """

    def __init__(
        self,
        *,
        memo: OperationMemo,
        resolve: Resolver,
        events: EventSink,
        interval: float,
        give_up_after: float,
    ) -> None:
        self._memo = memo
        self._resolve = resolve
        self._events = events
        self._interval = interval
        self._give_up_after = give_up_after
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="pending-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.sweep()

    async def sweep(self) -> None:
        """One pass: resolve each open operation inside the window, forget the older ones (but
        those answered as made)."""
        now = time.monotonic()
        for op in self._memo.open_operations():
            if now - op.since <= self._give_up_after:
                await self.check(op)
            elif not op.answered_made:
                log.info("no longer polled: %s %s", op.operation.name, op.reference)
                self._memo.forget(op.reference)

    async def check(self, op: OpenOperation) -> None:
        """Resolve one open operation and publish its outcome if it is news."""
        try:
            result = await self._resolve(op)
        except AdapterError as exc:
            log.info("still unknown: %s %s (%s)", op.operation.name, op.reference, exc.message)
            return
        if self._memo.settle(op.reference, result):
            self._events.publish(ChannelEvent(op.reference, op.operation, result))
