"""Analytics fixtures: the switch's fixtures (real Redis, sandbox workers, a switch process),
and a real `payswitch analytics` process serving AdminService beside them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import pathlib
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator

import grpc
import pytest

from payswitch.admin.v1 import admin_service_pb2 as pb
from payswitch.admin.v1 import admin_service_pb2_grpc as pb_grpc
from tests.integration.switch.conftest import *  # noqa: F403 - the switch's fixtures
from tests.integration.switch.conftest import Switch
from tests.support import free_port, spawn, wait_for_port

ADMIN_KEY = "adm_test_" + "a" * 16


def admin_table(port: int, key: str = ADMIN_KEY) -> str:
    return (
        "\n[admin]\n"
        f'api_key_sha256 = "{hashlib.sha256(key.encode()).hexdigest()}"\n'
        f'listen = "127.0.0.1:{port}"\n'
    )


class Analytics(Switch):
    """A `payswitch analytics` process (the journal consumer with AdminService), run and
    stopped like the switch's process."""

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = spawn(
                ["-m", "switch.analytics", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, timeout=30, proc=self.proc)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish what it was doing."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def analytics_factory(tmp_path: pathlib.Path) -> Iterator[Callable[[pathlib.Path], Analytics]]:
    """Starts analytics on a copy of a switch config with an [admin] table added."""
    started: list[Analytics] = []

    def make(switch_config: pathlib.Path) -> Analytics:
        port = free_port()
        cfg = tmp_path / f"analytics-{port}.toml"
        cfg.write_text(switch_config.read_text() + admin_table(port))
        a = Analytics(port=port, config=cfg, log=tmp_path / f"analytics-{port}.log")
        a.start()
        started.append(a)
        return a

    yield make
    for a in started:
        a.stop()


class Admin:
    """An AdminService stub that sends the admin key on every call."""

    def __init__(self, chan: grpc.aio.Channel, key: str) -> None:
        self.stub = pb_grpc.AdminServiceStub(chan)
        self.metadata = (("authorization", f"Bearer {key}"),)

    async def stats(self, **fields: object) -> pb.GetStatsResponse:
        fields.setdefault("window_minutes", 60)
        request = pb.GetStatsRequest(**fields)  # type: ignore[arg-type]
        reply: pb.GetStatsResponse = await self.stub.GetStats(
            request, metadata=self.metadata, timeout=10
        )
        return reply

    async def settled(self, timeout_s: float = 20.0, **fields: object) -> pb.GetStatsResponse:
        """The stats once the consumer has applied every journal entry so far."""
        deadline = time.monotonic() + timeout_s
        while True:
            reply = await self.stats(**fields)
            if reply.backlog_entries == 0 or time.monotonic() > deadline:
                return reply
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def admin(analytics: Analytics, key: str = ADMIN_KEY) -> AsyncIterator[Admin]:
    chan = grpc.aio.insecure_channel(analytics.address)
    try:
        yield Admin(chan, key)
    finally:
        await chan.close()
