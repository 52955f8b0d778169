"""AdminService at its edges: the admin key, bad requests, health, `payswitch stats` when the
service refuses or matplotlib is missing, and `payswitch analytics` with a bad [admin] table."""

from __future__ import annotations

import asyncio
import importlib.util
import pathlib
import secrets
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from payswitch.admin.v1 import admin_service_pb2 as pb
from switch.stack import ChannelSpec, config_toml
from tests.integration.analytics.conftest import ADMIN_KEY, Analytics, admin, admin_table
from tests.integration.switch.helpers import error_info, violations
from tests.support import REPO, free_port


def write_config(tmp_path: pathlib.Path, redis_url: str, extra: str) -> pathlib.Path:
    key_file = tmp_path / "fp.key"
    key_file.write_text(secrets.token_hex(32))
    cfg = tmp_path / f"analytics-{secrets.token_hex(3)}.toml"
    cfg.write_text(
        config_toml(
            listen=f"127.0.0.1:{free_port()}",
            redis_url=redis_url,
            api_key="psk_test_" + "k" * 16,
            channels=[ChannelSpec(name="sandbox", adapter="sandbox", port=free_port())],
            fingerprint_key_file=str(key_file),
            extra=extra,
        )
    )
    return cfg


@pytest.fixture
def analytics(tmp_path: pathlib.Path, redis_server):
    port = free_port()
    a = Analytics(
        port=port,
        config=write_config(tmp_path, redis_server.url, admin_table(port)),
        log=tmp_path / "analytics.log",
    )
    a.start()
    yield a
    a.stop()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=30
    )


async def test_only_the_admin_key_is_let_in(analytics: Analytics) -> None:
    for key in ("psk_test_" + "k" * 16, "wrong"):
        async with admin(analytics, key=key) as a:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await a.stats()
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_info(caught.value).reason == "ERROR_REASON_API_KEY_INVALID"
    async with admin(analytics) as a:
        reply = await a.stats()
    assert reply.backlog_entries == 0
    assert list(reply.volumes) == []


async def test_the_admin_key_without_the_bearer_scheme_is_unauthenticated(
    analytics: Analytics,
) -> None:
    async with admin(analytics) as a:
        for value in (ADMIN_KEY, f"Basic {ADMIN_KEY}", f"Bearer{ADMIN_KEY}"):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await a.stub.GetStats(
                    pb.GetStatsRequest(window_minutes=60),
                    metadata=(("authorization", value),),
                    timeout=10,
                )
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, value
            assert "authorization: Bearer <admin key>" in (caught.value.details() or ""), value
        # The scheme's name is case-insensitive (RFC 7235).
        reply = await a.stub.GetStats(
            pb.GetStatsRequest(window_minutes=60),
            metadata=(("authorization", f"bearer {ADMIN_KEY}"),),
            timeout=10,
        )
    assert reply.backlog_entries == 0


async def test_a_bad_request_names_each_field(analytics: Analytics) -> None:
    async with admin(analytics) as a:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await a.stats(merchant_id="m_nobody", window_minutes=0)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violations(caught.value) == ["merchant_id", "window_minutes"]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await a.stats(window_minutes=7 * 24 * 60 + 1)
        assert violations(caught.value) == ["window_minutes"]


async def test_bytes_that_are_no_request_are_invalid_argument(analytics: Analytics) -> None:
    async with grpc.aio.insecure_channel(analytics.address) as chan:
        for method in ("GetStats", "AddBlockListEntry", "ApproveRiskReview"):
            call = chan.unary_unary(f"/payswitch.admin.v1.AdminService/{method}")
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(
                    b"\x0a\x7fshort",
                    metadata=(("authorization", f"Bearer {ADMIN_KEY}"),),
                    timeout=10,
                )
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert violations(caught.value) == ["request"]
            # Without the admin key, the key is what is wrong.
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(b"\x0a\x7fshort", timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_health_says_the_admin_service_is_serving(analytics: Analytics) -> None:
    async with grpc.aio.insecure_channel(analytics.address) as chan:
        reply = await health_pb2_grpc.HealthStub(chan).Check(
            health_pb2.HealthCheckRequest(service="payswitch.admin.v1.AdminService"), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_stats_command_reports_refusals_and_plots(
    analytics: Analytics, tmp_path: pathlib.Path
) -> None:
    refused = await asyncio.to_thread(
        run, "-m", "switch.stats", "--admin", analytics.address, "--api-key", "wrong"
    )
    assert refused.returncode == 1
    assert "UNAUTHENTICATED" in refused.stderr

    chart = tmp_path / "chart.png"
    plotted = await asyncio.to_thread(
        run, "-m", "switch.stats", "--admin", analytics.address, "--api-key", ADMIN_KEY,
        "--plot", str(chart),
    )  # fmt: skip
    assert "no payments in this window" in plotted.stdout
    if importlib.util.find_spec("matplotlib") is None:
        assert plotted.returncode == 1
        assert "pip install matplotlib" in plotted.stderr
        assert not chart.exists()
    else:
        assert plotted.returncode == 0, plotted.stderr
        assert chart.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('\n[admin]\nlisten = "127.0.0.1:1"\n', "admin.api_key_sha256: required"),
        (admin_table(1).replace('"127.0.0.1:1"', '"here"'), "admin.listen: must be 'host:port'"),
        (admin_table(1) + "colour = 1\n", "admin.colour: unknown key"),
    ],
)
async def test_a_bad_admin_table_stops_the_process_with_the_key_named(
    tmp_path: pathlib.Path, table: str, message: str
) -> None:
    cfg = write_config(tmp_path, "redis://127.0.0.1:1/0", table)
    out = await asyncio.to_thread(run, "-m", "switch.analytics", "--config", str(cfg))
    assert out.returncode == 2
    assert f"payswitch analytics: config error: {message}" in out.stderr
