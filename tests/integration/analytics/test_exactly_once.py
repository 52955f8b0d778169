"""Exactly once against a real redis-server: a crash between applying and XACK, two consumers
on one group, a Redis restart that loses everything, and the aggregates' expiry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis

from payswitch.admin.v1 import admin_service_pb2 as pb
from switch.admin import StatsReader
from switch.analytics import GROUP, MerchantConsumer, RedisJournal, bucket_key, refund_key
from switch.errors import StoreUnavailable
from switch.model import Operation, Status
from switch.store import Store
from tests.unit.analytics.journalkit import Crash, fields

M = "m_test"
RETENTION_S = 3600


@pytest.fixture
async def r(redis_server) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


def journal(r: aioredis.Redis) -> RedisJournal:
    return RedisJournal(client=r, retention_s=RETENTION_S, refund_memory_s=7200)


class DiesOnAck:
    """A real journal whose consumer dies right after applying, before acknowledging."""

    def __init__(self, inner: RedisJournal) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def ack(self, merchant: str, ids: Sequence[str]) -> None:
        raise Crash("died before XACK")


async def pay(r: aioredis.Redis, amounts: Sequence[int]) -> None:
    now = time.time_ns() // 1_000_000
    for i, amount in enumerate(amounts):
        entry = fields(
            Operation.AUTHORIZE,
            Status.CAPTURED,
            pid=f"pay_{amount}_{i}",
            amount=amount,
            authorized=amount,
            captured=amount,
            t_ms=now,
        )
        await r.xadd(Store.journal_key(M), entry)  # type: ignore[arg-type]


async def approved(r: aioredis.Redis) -> tuple[int, int]:
    minute = time.time_ns() // 60_000_000_000
    reply = await StatsReader(client=r).stats(
        merchants=[M], channel="", start_minute=minute - 5, end_minute=minute + 1
    )
    rows = [v for v in reply.volumes if v.outcome == pb.OPERATION_OUTCOME_APPROVED]
    return sum(v.count for v in rows), sum(v.volume.amount_minor for v in rows)


async def drain(c: MerchantConsumer) -> None:
    while await c.step(block_ms=1):
        pass


async def test_a_crash_between_applying_and_xack_counts_nothing_twice(r: aioredis.Redis) -> None:
    await pay(r, [100, 200, 300])
    doomed = MerchantConsumer(merchant=M, journal=DiesOnAck(journal(r)), batch=10)
    with pytest.raises(Crash):
        await doomed.resume()
        await drain(doomed)
    assert await approved(r) == (3, 600)
    assert (await r.xpending(Store.journal_key(M), GROUP))["pending"] == 3

    await pay(r, [400])
    restarted = MerchantConsumer(merchant=M, journal=journal(r), batch=10)
    await restarted.resume()
    await drain(restarted)
    assert await approved(r) == (4, 1000)
    assert (await r.xpending(Store.journal_key(M), GROUP))["pending"] == 0


async def test_two_consumers_on_one_group_count_each_entry_once(r: aioredis.Redis) -> None:
    amounts = list(range(1, 41))
    await pay(r, amounts)
    a = MerchantConsumer(merchant=M, journal=journal(r), batch=3)
    b = MerchantConsumer(merchant=M, journal=journal(r), batch=5)
    await a.resume()
    await b.resume()
    while await a.step(block_ms=1) + await b.step(block_ms=1):
        pass
    assert await approved(r) == (40, sum(amounts))
    assert (await r.xpending(Store.journal_key(M), GROUP))["pending"] == 0


async def test_the_consumer_rides_out_a_redis_restart_and_a_lost_group(
    r: aioredis.Redis, redis_server
) -> None:
    consumer = MerchantConsumer(merchant=M, journal=journal(r), block_ms=50, retry_s=0.05)
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    try:
        await pay(r, [10, 20])
        await _until(r, (2, 30))
        redis_server.stop()  # no persistence: the journal, group and aggregates are gone
        await asyncio.sleep(0.3)
        redis_server.start()
        await pay(r, [5])
        await _until(r, (1, 5))
        await r.xgroup_destroy(Store.journal_key(M), GROUP)  # handed out again from the start
        await pay(r, [7])
        await _until(r, (2, 12))
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)  # raises if the consumer died


async def test_the_consumer_waits_out_a_full_redis(r: aioredis.Redis) -> None:
    await pay(r, [10, 20])
    await r.config_set("maxmemory-policy", "noeviction")
    await r.config_set("maxmemory", 1)  # every write refused: "OOM command not allowed"
    consumer = MerchantConsumer(merchant=M, journal=journal(r), block_ms=50, retry_s=0.05)
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    try:
        await asyncio.sleep(0.3)
        assert not running.done(), "the consumer stopped on a full Redis"
        await r.config_set("maxmemory", 0)
        await _until(r, (2, 30))
    finally:
        await r.config_set("maxmemory", 0)
        stop.set()
        await asyncio.wait_for(running, 5)  # raises if the consumer died


async def _until(r: aioredis.Redis, want: tuple[int, int]) -> None:
    got = None
    for _ in range(100):
        try:
            got = await approved(r)
        except StoreUnavailable:  # Redis is still coming back
            got = None
        if got == want:
            return
        await asyncio.sleep(0.05)
    assert got == want


async def test_aggregates_and_refund_memory_expire(r: aioredis.Redis) -> None:
    now = time.time_ns() // 1_000_000
    await r.xadd(
        Store.journal_key(M),
        fields(Operation.REFUND, Status.PARTIALLY_REFUNDED, captured=900, refunded=400, t_ms=now),  # type: ignore[arg-type]
    )
    c = MerchantConsumer(merchant=M, journal=journal(r))
    await c.resume()
    await drain(c)
    minute_ttl = await r.ttl(bucket_key(M, now // 60_000))
    assert 0 < minute_ttl <= RETENTION_S + 60
    refund_ttl = await r.ttl(refund_key(M, "pay_1"))
    assert 0 < refund_ttl <= 7200
    assert await r.get(refund_key(M, "pay_1")) == "400"
