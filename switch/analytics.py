"""Payment analytics: a consumer group on each merchant's journal keeps per-minute aggregates.

Run as its own process (`payswitch analytics --config FILE`), so the switch's hot path pays
nothing for it. Each merchant's journal (`ps:{m:<id>}:journal`) is read through the consumer
group `analytics` (XREADGROUP, XACK). A batch is applied by one Lua script that checks the
merchant's last applied entry id, checks that the batch is exactly the journal entries after
it, adds the batch's counts to the minute hashes and records the new last applied id, all
atomically. An entry at or below that id is never applied again, so a crash between applying
and XACK (or a second consumer by mistake) never counts an entry twice: on a restart the group
hands back the unacknowledged entries and they are skipped.

Redis layout, every key of a merchant under its hash tag `{m:<id>}`:
    ps:{m:<id>}:an:<unix minute>    hash of counters for one minute, expiring after retention
        n|<channel>|<method>|<currency>|<op>|<outcome>   operations
        v|<channel>|<method>|<currency>|<op>|<outcome>   their volume, minor units
        d|<channel>|<decline code>                       declined authorizations by code
        l|<channel>|<latency bucket>                     latency histogram (optional `lat_us`)
    ps:{m:<id>}:an:last             the last applied journal entry id
    ps:{m:<id>}:an:rf:<payment id>  the refunded total last seen, to turn totals into amounts
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import redis.asyncio as aioredis
import redis.exceptions

from switch.config import Config, ConfigError
from switch.errors import StoreUnavailable
from switch.store import Store

if TYPE_CHECKING:
    from switch.admin import AdminConfig

log = logging.getLogger("payswitch.analytics")
T = TypeVar("T")

GROUP = "analytics"
# One consumer name for every analytics process: a restarted process finds the entries its
# predecessor was handed but never acknowledged in the group's pending list under this name.
CONSUMER = "analytics"
APPROVED, DECLINED, FAILED, PENDING = "APPROVED", "DECLINED", "FAILED", "PENDING"
OUTCOMES = (APPROVED, DECLINED, FAILED, PENDING)
LATENCY_STEPS_PER_OCTAVE = 8


def bucket_key(merchant: str, minute: int) -> str:
    return f"ps:{{m:{merchant}}}:an:{minute}"


def last_key(merchant: str) -> str:
    return f"ps:{{m:{merchant}}}:an:last"


def refund_key(merchant: str, payment_id: str) -> str:
    return f"ps:{{m:{merchant}}}:an:rf:{payment_id}"


def after(entry_id: str, last: str) -> bool:
    """Whether stream id `entry_id` comes after `last` ('' is before everything)."""
    if not last:
        return True
    a, _, b = entry_id.partition("-")
    c, _, d = last.partition("-")
    return (int(a), int(b or 0)) > (int(c), int(d or 0))


# --- latency histogram ---------------------------------------------------------------------


def latency_bucket(us: int) -> int:
    """The histogram bucket of a latency: log-scale, 8 buckets per doubling (about 9% wide)."""
    return int(math.log2(max(1, us)) * LATENCY_STEPS_PER_OCTAVE)


def bucket_upper_us(bucket: int) -> int:
    return math.ceil(2 ** ((bucket + 1) / LATENCY_STEPS_PER_OCTAVE))


def percentile_us(histogram: Mapping[int, int], q: float) -> int:
    """The upper bound of the bucket holding quantile `q` (0 < q <= 1); 0 for no samples."""
    total = sum(histogram.values())
    if total <= 0:
        return 0
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket_upper_us(bucket)
    return bucket_upper_us(max(histogram))


# --- journal entries and their aggregation (pure) ------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """A journal entry, as switch.records.journal_entry writes it."""

    id: str
    pid: str
    op: str
    status: str
    amount: int
    currency: str
    authorized: int
    captured: int
    refunded: int
    channel: str
    method: str
    time_ms: int
    decline: int | None = None
    latency_us: int | None = None


def parse_entry(entry_id: str, fields: Mapping[str, str]) -> Entry | None:
    """An entry, or None (logged) when the fields are not a journal entry this code knows."""
    try:
        decline = fields.get("decline")
        latency = fields.get("lat_us")
        return Entry(
            id=entry_id,
            pid=fields["pid"],
            op=fields["op"],
            status=fields["status"],
            amount=int(fields["amount"]),
            currency=fields["cur"],
            authorized=int(fields["authorized"]),
            captured=int(fields["captured"]),
            refunded=int(fields["refunded"]),
            channel=fields["channel"],
            method=fields["method"],
            time_ms=int(fields["t"]),
            decline=int(decline) if decline else None,
            latency_us=int(latency) if latency else None,
        )
    except (KeyError, ValueError):
        log.warning("skipped a journal entry that is not a payment change", extra={"id": entry_id})
        return None


def classify(e: Entry, refunded_before: int) -> tuple[str, int]:
    """The outcome of the operation an entry records, and its volume in minor units."""
    if e.status == "PENDING":
        return PENDING, e.amount if e.op == "AUTHORIZE" else 0
    if e.op == "AUTHORIZE":
        if e.status in ("DECLINED", "FAILED"):
            return e.status, e.amount
        return APPROVED, e.authorized
    if e.op == "CAPTURE":
        return (APPROVED, e.captured) if e.status == "CAPTURED" else (DECLINED, 0)
    if e.op == "VOID":
        return (APPROVED, e.authorized) if e.status == "VOIDED" else (DECLINED, 0)
    # The journal carries the refunded total, so a refund's amount is the growth of that total
    # since the payment's last approved refund; a refund that did not grow it was not done.
    grown = e.refunded - refunded_before
    return (APPROVED, grown) if grown > 0 else (DECLINED, 0)


def refund_pids(entries: Iterable[Entry]) -> set[str]:
    """Payments whose refunded total before the batch is needed to aggregate it."""
    return {e.pid for e in entries if e.op == "REFUND" and e.status != "PENDING"}


@dataclass(slots=True)
class Increments:
    """What a batch adds: counters per minute, and refunded totals to remember per payment."""

    minutes: dict[int, dict[str, int]] = field(default_factory=dict)
    refunded: dict[str, int] = field(default_factory=dict)

    def add(self, minute: int, name: str, by: int) -> None:
        if by:
            counters = self.minutes.setdefault(minute, defaultdict(int))
            counters[name] += by


def aggregate(entries: Iterable[Entry], refunded_before: Mapping[str, int]) -> Increments:
    """The counters a run of consecutive journal entries adds."""
    out = Increments()
    for e in entries:
        minute = e.time_ms // 60_000
        before = out.refunded.get(e.pid, refunded_before.get(e.pid, 0))
        outcome, volume = classify(e, before)
        dims = f"{e.channel}|{e.method}|{e.currency}|{e.op}|{outcome}"
        out.add(minute, f"n|{dims}", 1)
        out.add(minute, f"v|{dims}", volume)
        if e.op == "REFUND" and outcome == APPROVED:
            out.refunded[e.pid] = e.refunded
        if outcome == DECLINED and e.op == "AUTHORIZE" and e.decline is not None:
            out.add(minute, f"d|{e.channel}|{e.decline}", 1)
        if e.latency_us is not None:
            out.add(minute, f"l|{e.channel}|{latency_bucket(e.latency_us)}", 1)
    return out


# --- the journal and the aggregates in Redis -----------------------------------------------

Raw = tuple[str, dict[str, str]]

# KEYS[1] last applied id  KEYS[2] journal  KEYS[3..] minute hashes, then refund keys
# ARGV[1] expected last id ('' = none)  ARGV[2] the batch's last id  ARGV[3] entries in it
# ARGV[4] JSON {"m": [[key index, expire at s, [field, by, ...]], ...],
#               "r": [[key index, refunded total, ttl s], ...]}; numbers travel as strings, so
# no amount ever passes through a Lua double.
APPLY_LUA = """
local last = redis.call('GET', KEYS[1]) or ''
if last ~= ARGV[1] then return {'stale', last} end
local n = tonumber(ARGV[3])
local from = '-'
if last ~= '' then from = '(' .. last end
local got = redis.call('XRANGE', KEYS[2], from, ARGV[2], 'COUNT', n + 1)
if #got ~= n then return {'gap', tostring(#got)} end
local p = cjson.decode(ARGV[4])
for _, m in ipairs(p.m) do
  local key, f = KEYS[tonumber(m[1])], m[3]
  for i = 1, #f, 2 do redis.call('HINCRBY', key, f[i], f[i + 1]) end
  redis.call('EXPIREAT', key, m[2])
end
for _, r in ipairs(p.r) do redis.call('SET', KEYS[tonumber(r[1])], r[2], 'EX', r[3]) end
redis.call('SET', KEYS[1], ARGV[2])
return {'ok', ARGV[2]}
"""


class Journal(Protocol):
    """The consumer's seam to Redis: a journal read through a consumer group, and the store."""

    async def ensure_group(self, merchant: str) -> None: ...
    async def read_pending(self, merchant: str, count: int) -> list[Raw]: ...
    async def read_new(self, merchant: str, count: int, block_ms: int) -> list[Raw]: ...
    async def read_after(self, merchant: str, last: str, upto: str, count: int) -> list[Raw]: ...
    async def last_applied(self, merchant: str) -> str: ...
    async def refunded_totals(self, merchant: str, pids: Sequence[str]) -> dict[str, int]: ...
    async def apply(
        self, merchant: str, *, expected: str, upto: str, entries: int, increments: Increments
    ) -> bool: ...
    async def ack(self, merchant: str, ids: Sequence[str]) -> None: ...


class RedisJournal:
    """Journal over real Redis; every method raises StoreUnavailable when Redis is down."""

    def __init__(
        self,
        *,
        client: aioredis.Redis,
        retention_s: int,
        refund_memory_s: int,
        timeout_s: float = 1.0,
    ) -> None:
        self._r = client
        self._retention_s = retention_s
        self._refund_s = refund_memory_s
        self._timeout_s = timeout_s
        self._apply = client.register_script(APPLY_LUA)

    async def ensure_group(self, merchant: str) -> None:
        try:
            await self._guard(
                self._r.xgroup_create(Store.journal_key(merchant), GROUP, id="0", mkstream=True)
            )
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read_pending(self, merchant: str, count: int) -> list[Raw]:
        key = Store.journal_key(merchant)
        return _rows(await self._guard(self._r.xreadgroup(GROUP, CONSUMER, {key: "0"}, count)))

    async def read_new(self, merchant: str, count: int, block_ms: int) -> list[Raw]:
        key = Store.journal_key(merchant)
        read = self._r.xreadgroup(GROUP, CONSUMER, {key: ">"}, count, block=block_ms)
        return _rows(await self._guard(read, extra_s=block_ms / 1000))

    async def read_after(self, merchant: str, last: str, upto: str, count: int) -> list[Raw]:
        key = Store.journal_key(merchant)
        start = f"({last}" if last else "-"
        rows: Any = await self._guard(self._r.xrange(key, start, upto, count))
        return [(str(i), dict(f or {})) for i, f in rows]

    async def last_applied(self, merchant: str) -> str:
        return str(await self._guard(self._r.get(last_key(merchant))) or "")

    async def refunded_totals(self, merchant: str, pids: Sequence[str]) -> dict[str, int]:
        values = await self._guard(self._r.mget([refund_key(merchant, p) for p in pids]))
        return {p: int(v) for p, v in zip(pids, values, strict=True) if v is not None}

    async def apply(
        self, merchant: str, *, expected: str, upto: str, entries: int, increments: Increments
    ) -> bool:
        now_s = time.time()
        keys = [last_key(merchant), Store.journal_key(merchant)]
        minutes: list[list[object]] = []
        for minute, counters in sorted(increments.minutes.items()):
            expire_at = (minute + 1) * 60 + self._retention_s
            if expire_at <= now_s:
                continue  # older than the retention: it would expire at once
            keys.append(bucket_key(merchant, minute))
            flat = [x for name, by in sorted(counters.items()) for x in (name, str(by))]
            minutes.append([str(len(keys)), str(expire_at), flat])
        refunds: list[list[str]] = []
        for pid, total in sorted(increments.refunded.items()):
            keys.append(refund_key(merchant, pid))
            refunds.append([str(len(keys)), str(total), str(self._refund_s)])
        payload = _json({"m": minutes, "r": refunds})
        out = await self._guard(self._apply(keys=keys, args=[expected, upto, entries, payload]))
        if out[0] != "ok":
            log.warning(
                "a batch did not apply; re-reading the journal from the last applied entry",
                extra={"merchant": merchant, "why": out[0], "detail": out[1]},
            )
        return bool(out[0] == "ok")

    async def ack(self, merchant: str, ids: Sequence[str]) -> None:
        if ids:
            await self._guard(self._r.xack(Store.journal_key(merchant), GROUP, *ids))

    async def _guard(self, call: Awaitable[T], extra_s: float = 0.0) -> T:
        try:
            async with asyncio.timeout(self._timeout_s + extra_s):
                return await call
        except (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            OSError,
            TimeoutError,
        ) as exc:
            raise StoreUnavailable("Redis is unavailable to the analytics consumer") from exc
        except redis.exceptions.OutOfMemoryError as exc:
            # At its maxmemory (noeviction) Redis refuses writes: wait, as for an outage.
            raise StoreUnavailable("Redis is full (maxmemory reached)") from exc
        except redis.exceptions.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # Redis restarted without its data, or someone destroyed the group: the consumer
            # starts over (the group is created again) like after an outage.
            raise StoreUnavailable("the analytics consumer group is gone") from exc


def _rows(reply: Any) -> list[Raw]:
    # XREADGROUP answers [[stream, [(id, fields), ...]]]; an entry deleted from the stream
    # while pending comes back with no fields.
    out: list[Raw] = []
    for _, entries in reply or ():
        out += [(entry_id, dict(fields or {})) for entry_id, fields in entries]
    return out


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


# --- the consumer ---------------------------------------------------------------------------


class MerchantConsumer:
    """Applies one merchant's journal to the aggregates, each entry exactly once."""

    def __init__(
        self,
        *,
        merchant: str,
        journal: Journal,
        batch: int = 500,
        block_ms: int = 1000,
        retry_s: float = 0.5,
        linger_s: float = 0.25,
    ) -> None:
        self.merchant = merchant
        self._j = journal
        self._batch = batch
        self._block_ms = block_ms
        self._retry_s = retry_s
        # After a short batch, wait this long before reading again, so that a steady trickle
        # of payments is applied a few times a second in batches rather than one by one: the
        # figures lag by at most this much, and Redis and this process work far less.
        self._linger_s = linger_s
        self._last = ""

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; a Redis outage only pauses it."""
        while not stop.is_set():
            try:
                await self.resume()
                while not stop.is_set():
                    if await self.step(block_ms=self._block_ms) < self._batch:
                        await _pause(stop, self._linger_s)
            except StoreUnavailable:
                log.warning("Redis is unavailable; retrying", extra={"merchant": self.merchant})
                await _pause(stop, self._retry_s)

    async def resume(self) -> None:
        """Start or restart: apply what the group handed out before and was never acknowledged."""
        await self._j.ensure_group(self.merchant)
        self._last = await self._j.last_applied(self.merchant)
        while rows := await self._j.read_pending(self.merchant, self._batch):
            await self._handle(rows)

    async def step(self, *, block_ms: int) -> int:
        """Read and apply one batch of new entries; returns how many were read."""
        rows = await self._j.read_new(self.merchant, self._batch, block_ms)
        if rows:
            await self._handle(rows)
        return len(rows)

    async def _handle(self, rows: list[Raw]) -> None:
        live = [(i, f) for i, f in rows if f and after(i, self._last)]
        if live and not await self._apply(live, expected=self._last):
            await self._catch_up(upto=live[-1][0])
        await self._j.ack(self.merchant, [i for i, _ in rows])

    async def _catch_up(self, *, upto: str) -> None:
        # The batch was not exactly the entries after the last applied one (another consumer,
        # or entries handed out of order): apply the journal itself, in order, up to `upto`.
        while True:
            self._last = await self._j.last_applied(self.merchant)
            if not after(upto, self._last):
                return
            rows = await self._j.read_after(self.merchant, self._last, upto, self._batch)
            if not rows:
                return
            await self._apply(rows, expected=self._last)

    async def _apply(self, rows: list[Raw], *, expected: str) -> bool:
        entries = [e for e in (parse_entry(i, f) for i, f in rows) if e is not None]
        pids = sorted(refund_pids(entries))
        before = await self._j.refunded_totals(self.merchant, pids) if pids else {}
        done = await self._j.apply(
            self.merchant,
            expected=expected,
            upto=rows[-1][0],
            entries=len(rows),
            increments=aggregate(entries, before),
        )
        if done:
            self._last = rows[-1][0]
        return done


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


# --- the process ----------------------------------------------------------------------------


async def run(cfg: Config, admin_cfg: AdminConfig, *, stop: asyncio.Event | None = None) -> int:
    """Consume every merchant's journal, and serve AdminService when [admin] sets a key."""
    from switch import admin

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    merchants = [m.id for m in cfg.merchants]
    client = aioredis.Redis.from_url(
        cfg.redis.url,
        decode_responses=True,
        socket_connect_timeout=cfg.redis.timeout_ms / 1000,
        max_connections=cfg.redis.max_connections,
    )
    journal = RedisJournal(
        client=client,
        retention_s=admin_cfg.retention_s,
        refund_memory_s=cfg.redis.payment_ttl_s,
        timeout_s=cfg.redis.timeout_ms / 1000,
    )
    tasks = [
        asyncio.create_task(
            MerchantConsumer(merchant=m, journal=journal).run(stop), name=f"analytics-{m}"
        )
        for m in merchants
    ]
    server = None
    if admin_cfg.api_key_sha256:
        server = await admin.serve(admin_cfg, client=client, switch=cfg)
    log.info(
        "analytics consuming",
        extra={"merchants": merchants, "admin": admin_cfg.listen if server else "off"},
    )
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
    code = 0
    for task in tasks:
        if task.done() and task.exception() is not None:
            log.error(
                "a consumer stopped", exc_info=task.exception(), extra={"task": task.get_name()}
            )
            code = 1
    stop.set()
    await stopped
    if server is not None:
        await server.stop(2)
    await asyncio.gather(*tasks, return_exceptions=True)
    await client.aclose()
    log.info("analytics stopped")
    return code


def main(argv: Sequence[str]) -> int:
    """`payswitch analytics --config FILE`."""
    import uvloop

    from adapters.sdk.logs import configure_logging
    from switch import admin

    parser = argparse.ArgumentParser(prog="payswitch analytics", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="the switch's TOML config file")
    ns = parser.parse_args(list(argv))
    try:
        cfg, admin_cfg = admin.load(ns.config)
    except ConfigError as exc:
        print(f"payswitch analytics: config error: {exc}", file=sys.stderr)
        return 2
    configure_logging(cfg.server.log_level)
    return uvloop.run(run(cfg, admin_cfg))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
