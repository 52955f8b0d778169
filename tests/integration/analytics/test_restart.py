"""The consumer survives kill -9: restarted, it resumes from its last acknowledged entry and the
totals still equal the payments made, none counted twice or lost."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from payswitch.admin.v1 import admin_service_pb2 as pb
from payswitch.common.v1 import payment_status_pb2 as ps
from switch.analytics import GROUP
from switch.stack import DEFAULT_MERCHANT
from switch.store import Store
from tests.integration.analytics.conftest import admin
from tests.integration.switch.conftest import connect
from tests.integration.switch.helpers import authorize


async def test_totals_stay_exact_across_a_kill_and_a_restart(
    sandbox_factory, switch_factory, analytics_factory, redis_server
):
    sb = sandbox_factory()
    sw = switch_factory([(sb, {})])
    an = analytics_factory(sw.config)
    amounts: list[int] = []

    async with connect(sw) as c, admin(an) as a:

        async def pay(count: int, workers: int = 6) -> None:
            queue = [100 + len(amounts) + i for i in range(count)]
            amounts.extend(queue)

            async def worker() -> None:
                while queue:
                    p = (await c.Authorize(authorize(queue.pop()))).payment
                    assert p.status == ps.PAYMENT_STATUS_CAPTURED

            await asyncio.gather(*(worker() for _ in range(workers)))

        async def approved() -> tuple[int, int]:
            reply = await a.stats(merchant_id=DEFAULT_MERCHANT)
            rows = [v for v in reply.volumes if v.outcome == pb.OPERATION_OUTCOME_APPROVED]
            return sum(v.count for v in rows), sum(v.volume.amount_minor for v in rows)

        # Kill it while payments are flowing and it is applying them.
        flowing = asyncio.create_task(pay(60))
        for _ in range(200):
            if (await approved())[0] >= 10:
                break
            await asyncio.sleep(0.02)
        an.kill()
        await flowing
        await pay(20)  # while no consumer runs: journaled, not yet counted

        an.start()
        await pay(20)
        await a.settled()
        assert await approved() == (len(amounts), sum(amounts))

    r = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        pending = await r.xpending(Store.journal_key(DEFAULT_MERCHANT), GROUP)
    finally:
        await r.aclose()
    assert pending["pending"] == 0
