"""The reconciler: a pending payment it cannot resolve does not hold up the rest of its work."""

from __future__ import annotations

import asyncio
import re
import urllib.request

import redis

from payswitch.common.v1 import payment_status_pb2 as ps
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from payswitch.gateway.v1 import payment_pb2
from switch.stack import DEFAULT_MERCHANT
from switch.store import Store
from tests.integration.switch.conftest import OTHER_KEY, connect
from tests.integration.switch.helpers import TIMEOUT, authorize
from tests.support import free_port

# Payments over 1,000.00 USD are held for a review, which nobody decides within a second.
REVIEW = (
    "\n[risk]\nreview_timeout_s = 1\n"
    '\n[[risk.amount_limits]]\nname = "big_usd"\ncurrency = "USD"\n'
    'max_amount_minor = 100000\naction = "review"\n'
)
UNREADABLE = 480
EVERY_MS = 25  # one unreadable record falls due every 25 ms, for 12 s: in every round


def _plant_unreadable(redis_server) -> None:
    """Pending payments of the switch's first merchant whose records it cannot read (cut off
    mid-write, say): each one's resolution fails every time it is tried."""
    with redis.Redis.from_url(redis_server.url) as r:
        seconds, micros = r.time()
        now_ms = seconds * 1000 + micros // 1000
        pipe = r.pipeline(transaction=False)
        for i in range(UNREADABLE):
            pid = f"pay_unreadable{i:04d}"
            pipe.hset(
                Store.payment_key(DEFAULT_MERCHANT, pid),
                mapping={"status": "PENDING", "pop": "AUTHORIZE", "doc": '["pay_unre'},
            )
            pipe.zadd(Store.pending_key(DEFAULT_MERCHANT), {pid: now_ms + i * EVERY_MS})
        pipe.execute()


async def _until(probe, ok, within_s: float):
    for _ in range(int(within_s * 10)):
        value = await probe()
        if ok(value):
            break
        await asyncio.sleep(0.1)
    return value


def _pending_gauge(metrics: str) -> float:
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found = re.search(r"^payswitch_pending_payments (\S+)$", text, re.MULTILINE)
    assert found, "the pending gauge is exported"
    return float(found.group(1))


async def test_payments_it_cannot_read_do_not_hold_up_other_payments_reviews_or_the_gauge(
    sandbox_factory, switch_factory, redis_server
):
    sb = sandbox_factory("sandbox", "--hang-ms", "3000")
    metrics = f"127.0.0.1:{free_port()}"
    sw = switch_factory([(sb, {"timeout_ms": 300})], metrics_listen=metrics, extra=REVIEW)
    async with connect(sw) as c, connect(sw, OTHER_KEY) as other:
        held = (await c.Authorize(authorize(150_000))).payment
        assert held.risk.review == payment_pb2.RISK_REVIEW_STATE_HELD
        _plant_unreadable(redis_server)
        # Another merchant's authorization whose answer is lost: only the reconciler resolves it.
        pending = (await other.Authorize(authorize(number=TIMEOUT))).payment
        assert pending.status == ps.PAYMENT_STATUS_PENDING

        def status_of(client, payment_id):
            async def probe():
                request = gw.GetPaymentRequest(payment_id=payment_id)
                return (await client.GetPayment(request)).payment.status

            return probe

        got = await _until(
            status_of(other, pending.id), lambda s: s != ps.PAYMENT_STATUS_PENDING, 8
        )
        assert got == ps.PAYMENT_STATUS_CAPTURED, "the other merchant's payment was resolved"
        # The review sweep (every 5 s) still runs: the undecided review is rejected.
        got = await _until(status_of(c, held.id), lambda s: s == ps.PAYMENT_STATUS_DECLINED, 8)
        assert got == ps.PAYMENT_STATUS_DECLINED, "the undecided review expired"
    # The gauge shows what stays pending: the unreadable payments, for an operator to see.
    gauge = await _until(
        lambda: asyncio.to_thread(_pending_gauge, metrics), lambda v: v == UNREADABLE, 5
    )
    assert gauge == UNREADABLE
    log = sw.log_text()
    assert "cannot resolve a pending payment" in log
    assert "pay_unreadable0000" in log
