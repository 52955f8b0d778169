"""How the switch listens: several accept loops on one port, and a port already taken."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import grpc

from payswitch.common.v1 import payment_status_pb2 as ps
from payswitch.gateway.v1 import gateway_service_pb2_grpc as gw_grpc
from switch.stack import ChannelSpec, config_toml
from tests.integration.switch.conftest import API_KEY
from tests.integration.switch.helpers import authorize
from tests.support import REPO


async def test_calls_over_many_connections_are_all_answered(sandbox_factory, switch_factory):
    sandbox = sandbox_factory()
    switch = switch_factory([(sandbox, {})])
    metadata = (("authorization", f"Bearer {API_KEY}"),)
    # Separate connections (a local subchannel pool each), as separate client processes open.
    channels = [
        grpc.aio.insecure_channel(switch.address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(8)
    ]
    try:
        stubs = [gw_grpc.GatewayServiceStub(c) for c in channels]
        replies = await asyncio.gather(
            *(stubs[i % 8].Authorize(authorize(), metadata=metadata, timeout=10) for i in range(64))
        )
    finally:
        await asyncio.gather(*(c.close() for c in channels))
    assert [r.payment.status for r in replies] == [ps.PAYMENT_STATUS_CAPTURED] * 64
    assert len({r.payment.id for r in replies}) == 64
    assert len(sandbox.received("authorize")) == 64
    assert '"accept_loops": 4' in switch.log_text()


def test_a_port_another_process_listens_on_is_refused(sandbox_factory, redis_server, tmp_path):
    sandbox = sandbox_factory()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        key_file = tmp_path / "fp.key"
        key_file.write_text("ab" * 32)
        config = tmp_path / "switch.toml"
        config.write_text(
            config_toml(
                listen=f"127.0.0.1:{port}",
                redis_url=redis_server.url,
                api_key=API_KEY,
                channels=[ChannelSpec(name="sandbox", adapter="sandbox", port=sandbox.port)],
                fingerprint_key_file=str(key_file),
            )
        )
        done = subprocess.run(
            [sys.executable, "-m", "switch", "serve", "--config", str(config)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "Traceback" not in done.stderr
