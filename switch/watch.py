"""Tells WatchPayment streams when their payment changed: locally at once, and from other
switch instances through the payments journal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import redis.exceptions

from switch.model import Payment
from switch.store import Store

log = logging.getLogger("payswitch.watch")


class WatchHub:
    """Subscriptions by payment; a journal tailer runs while anyone is subscribed."""

    def __init__(self, *, store: Store, merchants: Sequence[str]) -> None:
        self._store = store
        self._merchants = list(merchants)
        self._subs: dict[str, set[asyncio.Queue[None]]] = {}
        self._tailer: asyncio.Task[None] | None = None

    def notify(self, payment: Payment) -> None:
        self._wake(payment.id)

    def _wake(self, payment_id: str) -> None:
        for q in self._subs.get(payment_id, ()):
            if q.empty():
                q.put_nowait(None)

    @contextlib.contextmanager
    def subscribe(self, payment_id: str) -> Iterator[asyncio.Queue[None]]:
        q: asyncio.Queue[None] = asyncio.Queue(maxsize=1)
        self._subs.setdefault(payment_id, set()).add(q)
        if self._tailer is None or self._tailer.done():
            self._tailer = asyncio.create_task(self._tail(), name="journal-tailer")
        try:
            yield q
        finally:
            subs = self._subs.get(payment_id)
            if subs is not None:
                subs.discard(q)
                if not subs:
                    del self._subs[payment_id]
            if not self._subs and self._tailer is not None:
                self._tailer.cancel()
                self._tailer = None

    async def close(self) -> None:
        if self._tailer is not None:
            self._tailer.cancel()
            await asyncio.gather(self._tailer, return_exceptions=True)

    async def _tail(self) -> None:
        r = self._store.client
        streams: dict[str, str] = {Store.journal_key(m): "$" for m in self._merchants}
        while self._subs:
            try:
                batch: Any = await r.xread(streams, block=500, count=500)  # type: ignore[arg-type]
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                await asyncio.sleep(0.5)
                continue
            for stream, entries in batch or ():
                key = stream.decode() if isinstance(stream, bytes) else stream
                for entry_id, fields in entries:
                    streams[key] = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    pid = fields.get(b"pid") or fields.get("pid")
                    if pid is not None:
                        self._wake(pid.decode() if isinstance(pid, bytes) else pid)
