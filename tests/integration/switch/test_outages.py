"""Dependencies going away: Redis stopped mid-run, and the switch itself told to stop."""

from __future__ import annotations

import asyncio
import subprocess

import grpc
import pytest
import redis

from payswitch.common.v1 import payment_status_pb2 as ps
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from payswitch.gateway.v1 import payment_pb2
from tests.integration.switch.conftest import connect
from tests.integration.switch.helpers import SLOW, TIMEOUT, authorize, error_info, key


async def test_redis_down_means_unavailable_and_nothing_forwarded_then_recovery(
    sandbox_factory, switch_factory, redis_server
):
    sb = sandbox_factory()
    sw = switch_factory([(sb, {})])
    async with connect(sw) as c:
        assert (await c.Authorize(authorize())).payment.status == ps.PAYMENT_STATUS_CAPTURED
        redis_server.stop()
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await c.Authorize(authorize())
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert error_info(caught.value).reason == "ERROR_REASON_STORE_UNAVAILABLE"
        assert len(sb.received("authorize")) == 1

        redis_server.start()
        for _ in range(50):
            try:
                p = (await c.Authorize(authorize())).payment
                break
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("the switch did not recover when Redis came back")
        assert p.status == ps.PAYMENT_STATUS_CAPTURED
        assert len(sb.received("authorize")) == 2


def _fill(redis_server, full: bool) -> None:
    """Redis at its memory limit (every write refused, as in production with noeviction) or not."""
    with redis.Redis.from_url(redis_server.url) as r:
        r.config_set("maxmemory-policy", "noeviction")
        r.config_set("maxmemory", 1 if full else 0)


async def test_redis_full_means_unavailable_and_nothing_forwarded_then_recovery(
    sandbox_factory, switch_factory, redis_server
):
    sb = sandbox_factory()
    sw = switch_factory([(sb, {})])
    async with connect(sw) as c:
        assert (await c.Authorize(authorize())).payment.status == ps.PAYMENT_STATUS_CAPTURED
        _fill(redis_server, True)
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await c.Authorize(authorize())
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert error_info(caught.value).reason == "ERROR_REASON_STORE_UNAVAILABLE"
            assert "full" in (caught.value.details() or "")
        assert len(sb.received("authorize")) == 1

        _fill(redis_server, False)
        p = (await c.Authorize(authorize())).payment
        assert p.status == ps.PAYMENT_STATUS_CAPTURED
        assert len(sb.received("authorize")) == 2


async def _at_the_channel(c, sb, k: str) -> asyncio.Future[gw.AuthorizeResponse]:
    """A slow card's Authorize under key `k`, once it has reached the channel."""
    call = asyncio.ensure_future(c.Authorize(authorize(number=SLOW, idempotency_key=k)))
    for _ in range(250):
        if sb.received("authorize"):
            break
        await asyncio.sleep(0.02)
    assert len(sb.received("authorize")) == 1, "the payment reached the channel"
    return call


async def _recorded_once(c, sb, answered: payment_pb2.Payment, k: str) -> None:
    """The answer a caller got while Redis refused its record is recorded once Redis serves
    again: the payment shows it, the key replays it, and the card was charged once."""
    for _ in range(100):
        got = (await c.GetPayment(gw.GetPaymentRequest(payment_id=answered.id))).payment
        if got.status == ps.PAYMENT_STATUS_CAPTURED:
            break
        await asyncio.sleep(0.1)
    assert got.status == ps.PAYMENT_STATUS_CAPTURED, "the outcome was recorded"
    replay = (await c.Authorize(authorize(number=SLOW, idempotency_key=k))).payment
    assert (replay.id, replay.status) == (answered.id, ps.PAYMENT_STATUS_CAPTURED)
    assert len(sb.received("authorize")) == 1, "charged once"


async def test_an_outcome_refused_by_a_full_redis_is_recorded_once_it_has_room(
    sandbox_factory, switch_factory, redis_server
):
    sb = sandbox_factory("sandbox", "--slow-ms", "800")
    sw = switch_factory([(sb, {})])
    k = key()
    async with connect(sw) as c:
        call = await _at_the_channel(c, sb, k)
        _fill(redis_server, True)  # the channel approves while Redis refuses every write
        answered = (await call).payment
        assert answered.status == ps.PAYMENT_STATUS_CAPTURED
        assert "could not record an outcome" in sw.log_text()

        _fill(redis_server, False)
        await _recorded_once(c, sb, answered, k)


# A script that keeps Redis busy for ARGV[1] microseconds: meanwhile every other client gets
# "BUSY Redis is busy running a script", as it gets "LOADING" from a Redis reading its data.
_SPIN = (
    "local t = redis.call('TIME') local t0 = t[1] * 1000000 + t[2] "
    "repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] - t0 > tonumber(ARGV[1]) "
    "return 1"
)


def _keep_busy(redis_server, seconds: float) -> None:
    with redis.Redis.from_url(redis_server.url) as r:
        r.config_set("busy-reply-threshold", 20)
        r.eval(_SPIN, 0, int(seconds * 1_000_000))


async def test_a_redis_that_answers_busy_is_a_redis_down_and_nothing_is_lost(
    sandbox_factory, switch_factory, redis_server
):
    sb = sandbox_factory("sandbox", "--slow-ms", "600", "--hang-ms", "3000")
    sw = switch_factory([(sb, {"timeout_ms": 1000})])
    k = key()
    async with connect(sw) as c:
        call = await _at_the_channel(c, sb, k)
        busy = asyncio.ensure_future(asyncio.to_thread(_keep_busy, redis_server, 2.0))
        await asyncio.sleep(0.2)
        # New payments meet the busy Redis: refused as when it is down, nothing forwarded.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await c.Authorize(authorize())
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_info(caught.value).reason == "ERROR_REASON_STORE_UNAVAILABLE"
        # The channel approves while Redis refuses the record: the caller still gets the answer.
        answered = (await call).payment
        assert answered.status == ps.PAYMENT_STATUS_CAPTURED
        await busy

        await _recorded_once(c, sb, answered, k)

        # The reconciler met the busy Redis too, and still resolves unknown outcomes.
        pending = (await c.Authorize(authorize(number=TIMEOUT))).payment
        assert pending.status == ps.PAYMENT_STATUS_PENDING
        for _ in range(150):
            got = (await c.GetPayment(gw.GetPaymentRequest(payment_id=pending.id))).payment
            if got.status != ps.PAYMENT_STATUS_PENDING:
                break
            await asyncio.sleep(0.1)
        assert got.status == ps.PAYMENT_STATUS_CAPTURED, "the reconciler resolved it"
    assert "internal error" not in sw.log_text()


async def test_a_redis_short_of_replicas_is_a_redis_down_then_recovery(
    sandbox_factory, switch_factory, redis_server
):
    sb = sandbox_factory()
    sw = switch_factory([(sb, {})])
    async with connect(sw) as c:
        with redis.Redis.from_url(redis_server.url) as r:
            # No replica at all: every write is answered "NOREPLICAS Not enough good replicas".
            r.config_set("min-replicas-to-write", 1)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await c.Authorize(authorize())
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert error_info(caught.value).reason == "ERROR_REASON_STORE_UNAVAILABLE"
            assert sb.received("authorize") == []
            r.config_set("min-replicas-to-write", 0)
        assert (await c.Authorize(authorize())).payment.status == ps.PAYMENT_STATUS_CAPTURED
    assert "internal error" not in sw.log_text()


async def test_calls_in_flight_at_sigterm_get_their_answers(sandbox_factory, switch_factory):
    sb = sandbox_factory("sandbox", "--slow-ms", "1000")
    sw = switch_factory([(sb, {})], grace_period_s=10)
    async with connect(sw) as c:
        calls = [asyncio.ensure_future(c.Authorize(authorize(number=SLOW))) for _ in range(5)]
        for _ in range(250):  # on a busy machine the five take a moment to reach the sandbox
            if len(sb.received("authorize")) == 5:
                break
            await asyncio.sleep(0.02)
        assert len(sb.received("authorize")) == 5, "all five were in flight"
        assert not any(call.done() for call in calls)
        sw.terminate()
        results = await asyncio.gather(*calls)
        assert [r.payment.status for r in results] == [ps.PAYMENT_STATUS_CAPTURED] * 5
    assert sw.proc is not None
    try:
        code = sw.proc.wait(30)
    except subprocess.TimeoutExpired:
        tail = sw.log_text()[-3000:]
        pytest.fail(f"the switch did not exit after SIGTERM; its log ends:\n{tail}")
    assert code == 0


async def test_a_caller_that_hangs_up_midway_still_gets_one_recorded_charge(
    sandbox_factory, switch_factory
):
    sb = sandbox_factory("sandbox", "--slow-ms", "800")
    sw = switch_factory([(sb, {})])
    k = key()
    async with connect(sw) as c:
        call = c.Authorize(authorize(number=SLOW, idempotency_key=k))
        for _ in range(250):
            if sb.received("authorize"):
                break
            await asyncio.sleep(0.02)
        assert len(sb.received("authorize")) == 1, "the payment reached the channel"
        call.cancel()  # the caller hangs up while the channel works
        with pytest.raises(asyncio.CancelledError):
            await call
        # The switch goes on without the caller: the channel's answer is recorded, and the
        # caller's retry with the same key gets that payment instead of a second charge.
        for _ in range(100):
            try:
                replay = (await c.Authorize(authorize(number=SLOW, idempotency_key=k))).payment
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.ABORTED, exc  # still in progress
                await asyncio.sleep(0.1)
                continue
            break
        else:
            pytest.fail("the payment stayed in progress: nothing recorded the channel's answer")
        assert replay.status == ps.PAYMENT_STATUS_CAPTURED
        got = (await c.GetPayment(gw.GetPaymentRequest(payment_id=replay.id))).payment
        assert got.status == ps.PAYMENT_STATUS_CAPTURED
    assert len(sb.received("authorize")) == 1, "charged once"
    assert "unexpected failure" not in sw.log_text()
