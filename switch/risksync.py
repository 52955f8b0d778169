"""Keeps a switch's risk state current: block lists from Redis, and reload requests.

The admin process writes block lists to Redis (one hash per list, entry -> note), bumps a version
counter and announces the change on a pub/sub channel. Each switch holds the lists in memory, so
checking a payment costs no round trip; it reloads them when it hears the announcement, and
polls the version once a second in case it missed one (pub/sub does not deliver to a switch that
was disconnected). The same channel carries config reload requests (AdminService.ReloadConfig).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from switch.risk import BinRanges, BlockLists, RiskEngine, parse_bin_range
from switch.store import not_serving

log = logging.getLogger("payswitch.risksync")

# Block lists are global (not a merchant's): each list one hash of entry -> JSON note.
BLOCK_KEYS = {
    "card": "ps:risk:block:card",
    "bin": "ps:risk:block:bin",
    "buyer": "ps:risk:block:buyer",
}
BLOCK_VERSION_KEY = "ps:risk:block:ver"
EVENTS_CHANNEL = "ps:risk:events"
BLOCKS_CHANGED = "blocks"
RELOAD = "reload"
POLL_S = 1.0


class BadBlockData(Exception):
    """Redis holds something at the block lists' keys that no admin wrote (a version that is
    not a number): for an operator to fix, like a refusal."""


# Any Redis error, not only a lost connection: a Redis that is loading, busy or read-only answers
# with error replies, and the sync must outlast them too; and data it cannot read.
_ERRORS = (redis.exceptions.RedisError, OSError, BadBlockData)
# A refusal (see `_refused`) is logged the first time and every this many tries after: with a
# try every POLL_S, about once a minute.
REFUSED_LOG_EVERY = 60


def _refused(exc: Exception) -> bool:
    """Whether Redis refuses the sync for a reason that will not pass on its own: an ACL without
    a permission it needs (NOPERM), a key of the wrong type (WRONGTYPE), a wrong password, a
    version that is not a number. Those are for an operator to fix, not an outage to wait out
    quietly."""
    if isinstance(exc, (redis.exceptions.AuthenticationError, BadBlockData)):
        return True
    if not isinstance(exc, _ERRORS):
        return True  # not Redis's at all (a bug, a reload that raised): logged just the same
    return isinstance(exc, redis.exceptions.ResponseError) and not not_serving(exc)


def _version(raw: Any) -> int:
    text = _s(raw or 0)
    if not text.isascii() or not text.isdigit():
        raise BadBlockData(f"{BLOCK_VERSION_KEY} holds {text[:40]!r}, not a version number")
    return int(text)


def _s(v: Any) -> str:
    # Not UTF-8 (nothing the admin writes): replaced, where a decoding error would end the sync.
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def _entries(kind: str, raw: list[Any]) -> list[str]:
    """The entries of one list as text. One that is not UTF-8 (nothing the admin writes: a hand
    edit in Redis) could never match a request; it is left out and logged, not read as
    something else."""
    out = []
    for v in raw:
        if isinstance(v, bytes):
            try:
                v = v.decode()
            except UnicodeDecodeError:
                log.warning(
                    "ignoring a block list entry that is not UTF-8",
                    extra={"list": BLOCK_KEYS[kind], "value": repr(v[:40])},
                )
                continue
        out.append(str(v))
    return out


async def load_blocks(client: aioredis.Redis) -> BlockLists:
    """Read the three lists and their version in one transaction, so they belong together."""
    pipe = client.pipeline(transaction=True)
    pipe.get(BLOCK_VERSION_KEY)
    for key in BLOCK_KEYS.values():
        pipe.hkeys(key)
    version, cards, bins, buyers = await pipe.execute()
    ranges = []
    for text in _entries("bin", bins):
        try:
            ranges.append(parse_bin_range(text))
        except ValueError:
            log.warning("ignoring a malformed BIN range in the block list", extra={"value": text})
    return BlockLists(
        cards=frozenset(_entries("card", cards)),
        buyers=frozenset(_entries("buyer", buyers)),
        bins=BinRanges.of(ranges),
        version=_version(version),
    )


class RiskSync:
    """The background task that keeps `engine.blocks` current and hands reload requests to
    `on_reload`."""

    def __init__(
        self, *, client: aioredis.Redis, engine: RiskEngine, on_reload: Callable[[str], None]
    ) -> None:
        self._r = client
        self._engine = engine
        self._on_reload = on_reload
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the lists once (a switch never serves without them), then keep them current."""
        try:
            await self.refresh()
        except _ERRORS:
            log.warning("cannot read the risk block lists yet; retrying in the background")
        self._task = asyncio.create_task(self._run(), name="risk-sync")

    async def stop(self) -> None:
        # A cancellation that lands as redis-py's own read timeout expires is taken for that
        # timeout (the task reads on): cancelled again until it ends.
        while self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait([self._task], timeout=0.5)
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def refresh(self) -> None:
        blocks = await load_blocks(self._r)
        if blocks.version != self._engine.blocks.version:
            log.info(
                "risk block lists loaded",
                extra={
                    "version": blocks.version,
                    "cards": len(blocks.cards),
                    "buyers": len(blocks.buyers),
                    "bin_ranges": sum(len(los) for _, los, _ in blocks.bins.by_length),
                },
            )
            self._engine.blocks = blocks

    async def _run(self) -> None:
        down = False
        refused = 0  # tries in a row that Redis refused
        while True:
            pubsub = self._r.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(EVENTS_CHANNEL)
                await self.refresh()  # whatever changed while not subscribed
                if down or refused:
                    log.info("risk sync reaches Redis again")
                down, refused = False, 0
                while True:
                    message = await pubsub.get_message(timeout=POLL_S)
                    if message is not None and _s(message.get("data")) == RELOAD:
                        self._on_reload("admin request")
                    else:
                        await self._check_version()
            except Exception as exc:  # the sync outlives every failure: lists must not freeze
                if _refused(exc):
                    if refused % REFUSED_LOG_EVERY == 0:
                        ours = not isinstance(exc, _ERRORS)  # a bug: its traceback
                        log.error(
                            "risk sync failed; block lists stay as they were, retrying"
                            if ours
                            else "Redis refuses the risk sync or holds what it cannot read "
                            "(fix its setup: this is no outage); block lists stay as they were, "
                            "retrying",
                            exc_info=exc if ours else None,
                            extra={"error": f"{type(exc).__name__}: {exc}", "tries": refused + 1},
                        )
                    refused += 1
                else:
                    if not down:
                        log.warning("risk sync cannot reach Redis; block lists stay as they were")
                    down = True
                await asyncio.sleep(POLL_S)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _check_version(self) -> None:
        version = _version(await self._r.get(BLOCK_VERSION_KEY))
        if version != self._engine.blocks.version:
            await self.refresh()
