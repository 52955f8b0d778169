"""Dependencies going away: Redis stopped mid-run, and the switch itself told to stop."""

from __future__ import annotations

import asyncio
import subprocess

import grpc
import pytest

from payswitch.common.v1 import payment_status_pb2 as ps
from tests.integration.switch.conftest import connect
from tests.integration.switch.helpers import SLOW, authorize, error_info


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
