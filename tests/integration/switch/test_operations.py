"""What an operator sees: health, reflection for grpcurl/buf curl, Prometheus metrics."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.integration.switch.conftest import connect
from tests.integration.switch.helpers import DECLINE, authorize
from tests.support import free_port


async def test_health_reflection_and_metrics(sandbox_factory, switch_factory):
    sb = sandbox_factory()
    metrics = f"127.0.0.1:{free_port()}"
    sw = switch_factory([(sb, {})], metrics_listen=metrics)
    async with grpc.aio.insecure_channel(sw.address) as chan:
        health = health_pb2_grpc.HealthStub(chan)
        for service in ("", "payswitch.gateway.v1.GatewayService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING

        refl = reflection_pb2_grpc.ServerReflectionStub(chan)
        call = refl.ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        answer = await call.read()
        await call.done_writing()
        names = {s.name for s in answer.list_services_response.service}
        assert "payswitch.gateway.v1.GatewayService" in names
        assert "grpc.health.v1.Health" in names

    async with connect(sw) as c:
        request = authorize()
        await c.Authorize(request)
        await c.Authorize(request)  # a replay
        await c.Authorize(authorize(number=DECLINE))

    text = await asyncio.to_thread(_scrape, f"http://{metrics}/metrics")
    assert 'payswitch_requests_total{code="OK",rpc="Authorize"} 3.0' in text
    assert 'payswitch_idempotent_replays_total{rpc="Authorize"} 1.0' in text
    outcomes = 'payswitch_channel_outcomes_total{channel="sandbox",operation="AUTHORIZE",outcome='
    assert outcomes + '"APPROVED"} 1.0' in text
    assert outcomes + '"DECLINED"} 1.0' in text
    assert "payswitch_overhead_seconds_bucket" in text
    assert "payswitch_pending_payments" in text


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())
