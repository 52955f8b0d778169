"""Routing's shared state: approval counts per channel over a sliding window, synced through Redis.

Outcomes are counted in memory as they arrive (no Redis call per payment). Every
`sync_interval_ms` one pipeline adds this instance's new counts to per-bucket fields of each
channel's hash, reads every channel's hash back (the merged counts of all switch instances) and
publishes this instance's breaker states, which `payswitch routes explain` reads.

Redis layout (`{rt}` keeps routing keys in one slot of a cluster):
    ps:{rt}:sr:<channel>    hash  <bucket>:a approved, <bucket>:n answered authorizations;
                            a bucket is a tenth of the window, old buckets are deleted
    ps:{rt}:brk             hash  <channel>|<endpoint>|<instance> -> <state>|<unix ms>
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

log = logging.getLogger("payswitch.routestate")

BUCKETS = 10
BREAKERS_KEY = "ps:{rt}:brk"


def rate_key(channel: str) -> str:
    return f"ps:{{rt}}:sr:{channel}"


def merge(fields: Mapping[Any, Any], now_bucket: int) -> tuple[int, int, list[str]]:
    """Approved and answered counts in the window's buckets, and the fields of older buckets."""
    approved = total = 0
    stale: list[str] = []
    for raw_name, raw_value in fields.items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
        bucket, _, kind = name.partition(":")
        if not bucket.isdigit():
            stale.append(name)
            continue
        if int(bucket) <= now_bucket - BUCKETS:
            stale.append(name)
        elif kind == "a":
            approved += int(raw_value)
        elif kind == "n":
            total += int(raw_value)
    return approved, total, stale


class RouteState:
    """Approval rates for the router, learned here and from every other switch instance."""

    def __init__(
        self,
        *,
        client: aioredis.Redis,
        channels: Iterable[str],
        window_s: int,
        min_samples: int,
        interval_ms: int,
        breakers: Callable[[], dict[str, str]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._r = client
        self._channels = list(channels)
        self._interval_s = interval_ms / 1000
        self._breakers = breakers
        self._clock = clock
        self.instance = secrets.token_hex(4)
        self._delta: dict[str, list[int]] = {c: [0, 0] for c in self._channels}
        self._counts: dict[str, tuple[int, int]] = {}
        self._rates: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.reconfigure(window_s=window_s, min_samples=min_samples)

    def reconfigure(self, *, window_s: int, min_samples: int) -> None:
        self._bucket_ms = max(1, window_s * 1000 // BUCKETS)
        self._window_s = window_s
        self._min = min_samples

    # --- the hot path: memory only -----------------------------------------------------------

    def record(self, channel: str, approved: bool) -> None:
        """Count one answered authorization (approved or declined) of a channel."""
        delta = self._delta.get(channel)
        if delta is not None:
            delta[0] += approved
            delta[1] += 1

    def rate(self, channel: str) -> float | None:
        """The channel's approval rate over the window, or None below the minimum of samples."""
        return self._rates.get(channel)

    def counts(self, channel: str) -> tuple[int, int]:
        """Approved and answered authorizations over the window, all instances."""
        return self._counts.get(channel, (0, 0))

    # --- the background step -----------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="route-state")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(redis.exceptions.RedisError, OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await self.sync()  # hand over what this instance counted last

    async def _loop(self) -> None:
        down = False
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                async with asyncio.timeout(max(1.0, self._interval_s)):
                    await self.sync()
            except (redis.exceptions.RedisError, OSError, TimeoutError):
                if not down:
                    log.warning("cannot sync routing state with Redis; rates are kept as they were")
                down = True
                continue
            if down:
                log.info("routing state syncs with Redis again")
            down = False

    async def sync(self) -> None:
        """Add this instance's new counts, read everyone's, publish breaker states."""
        taken = {c: d for c, d in self._delta.items() if d[1]}
        for c in taken:
            self._delta[c] = [0, 0]
        now_ms = int(self._clock() * 1000)
        bucket = now_ms // self._bucket_ms
        ttl = self._window_s * 2
        pipe = self._r.pipeline(transaction=False)
        for channel, (approved, total) in taken.items():
            key = rate_key(channel)
            pipe.hincrby(key, f"{bucket}:a", approved)
            pipe.hincrby(key, f"{bucket}:n", total)
            pipe.expire(key, ttl)
        for channel in self._channels:
            pipe.hgetall(rate_key(channel))
        states = self._breakers() if self._breakers is not None else {}
        if states:
            stamp = f"|{now_ms}"
            pipe.hset(
                BREAKERS_KEY,
                mapping={f"{k}|{self.instance}": v + stamp for k, v in states.items()},
            )
            pipe.expire(BREAKERS_KEY, max(60, ttl))
        try:
            out = await pipe.execute()
        except BaseException:
            for c, (a, n) in taken.items():  # nothing is lost: counted again next time
                self._delta[c][0] += a
                self._delta[c][1] += n
            raise
        hashes = out[3 * len(taken) : 3 * len(taken) + len(self._channels)]
        stale_pipe = self._r.pipeline(transaction=False)
        stale_any = False
        for channel, fields in zip(self._channels, hashes, strict=True):
            approved, total, stale = merge(fields, bucket)
            self._counts[channel] = (approved, total)
            if total >= self._min:
                self._rates[channel] = approved / total
            else:
                self._rates.pop(channel, None)
            if stale:
                stale_pipe.hdel(rate_key(channel), *stale)
                stale_any = True
        if stale_any:
            await stale_pipe.execute()


async def read_breakers(client: aioredis.Redis, max_age_ms: int) -> dict[str, list[str]]:
    """Breaker states published by running switches: `channel|endpoint` -> ['OPEN', ...]."""
    raw = await client.hgetall(BREAKERS_KEY)
    now_ms = int(time.time() * 1000)
    out: dict[str, list[str]] = {}
    for k, v in raw.items():
        key = k.decode() if isinstance(k, bytes) else str(k)
        value = v.decode() if isinstance(v, bytes) else str(v)
        channel, endpoint, _instance = key.rsplit("|", 2)
        state, _, stamp = value.partition("|")
        if stamp.isdigit() and now_ms - int(stamp) <= max_age_ms:
            out.setdefault(f"{channel}|{endpoint}", []).append(state)
    return out
