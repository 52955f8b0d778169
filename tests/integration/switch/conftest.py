"""Fixtures for the switch's integration tests: real sandbox workers, a real switch, a client."""

from __future__ import annotations

import contextlib
import hashlib
import json
import pathlib
import secrets
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import grpc
import pytest

from payswitch.gateway.v1 import gateway_service_pb2_grpc as gw_grpc
from switch.stack import ChannelSpec, config_toml
from tests.support import RedisServer, free_port, spawn, stop_process, wait_for_port

API_KEY = "psk_test_" + "k" * 16
OTHER_KEY = "psk_test_" + "o" * 16


@dataclass
class Sandbox:
    """A sandbox adapter worker process; `received()` reads what reached it from its journal."""

    name: str
    port: int
    journal: pathlib.Path
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = spawn(
            [
                "-m",
                "switch",
                "adapter",
                "sandbox",
                "--listen",
                f"127.0.0.1:{self.port}",
                "--name",
                self.name,
                "--journal",
                str(self.journal),
                *self.args,
            ]
        )
        wait_for_port(self.port, proc=self.proc)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def received(self, op: str | None = None) -> list[dict[str, object]]:
        if not self.journal.exists():
            return []
        rows = [json.loads(line) for line in self.journal.read_text().splitlines() if line.strip()]
        return [r for r in rows if op is None or r.get("op") == op]


@dataclass
class Switch:
    """A switch process on a free port, with its config and log."""

    port: int
    config: pathlib.Path
    log: pathlib.Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = spawn(
                ["-m", "switch", "serve", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, timeout=30, proc=self.proc)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=20)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Client:
    """A Gateway stub that sends the API key on every call."""

    def __init__(self, stub: gw_grpc.GatewayServiceStub, api_key: str | None) -> None:
        self.raw = stub
        self.metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()

    def __getattr__(self, rpc: str) -> Callable[..., object]:
        method = getattr(self.raw, rpc)

        def call(request: object, **kwargs: object) -> object:
            kwargs.setdefault("metadata", self.metadata)
            kwargs.setdefault("timeout", 10)
            return method(request, **kwargs)

        return call


@pytest.fixture
def sandbox_factory(tmp_path: pathlib.Path) -> Iterator[Callable[..., Sandbox]]:
    started: list[Sandbox] = []

    def make(name: str = "sandbox", *args: str) -> Sandbox:
        sb = Sandbox(
            name=name,
            port=free_port(),
            journal=tmp_path / f"{name}-{secrets.token_hex(3)}.jsonl",
            args=list(args),
        )
        sb.start()
        started.append(sb)
        return sb

    yield make
    for sb in started:
        sb.stop()


@pytest.fixture
def switch_factory(
    tmp_path: pathlib.Path, redis_server: RedisServer
) -> Iterator[Callable[..., Switch]]:
    started: list[Switch] = []

    def make(
        sandboxes: list[tuple[Sandbox, dict[str, int]]],
        *,
        merchant_rate: int = 100_000,
        merchant_burst: int = 100_000,
        reconciler_interval_ms: int = 50,
        grace_period_s: float = 10.0,
        metrics_listen: str = "",
        dead_channels: list[tuple[str, int]] = (),  # type: ignore[assignment]
        extra: str = "",
    ) -> Switch:
        # One key per test: switches sharing a Redis fingerprint cards alike, as in production.
        key_file = tmp_path / "fp.key"
        if not key_file.exists():
            key_file.write_text(secrets.token_hex(32))
        specs = [
            ChannelSpec(name=sb.name, adapter="sandbox", port=sb.port, **opts)
            for sb, opts in sandboxes
        ] + [ChannelSpec(name=n, adapter="sandbox", port=p) for n, p in dead_channels]
        port = free_port()
        toml = config_toml(
            listen=f"127.0.0.1:{port}",
            redis_url=redis_server.url,
            api_key=API_KEY,
            channels=specs,
            fingerprint_key_file=str(key_file),
            merchant_rate=merchant_rate,
            merchant_burst=merchant_burst,
            grace_period_s=grace_period_s,
            metrics_listen=metrics_listen,
        )
        toml += (
            "\n[[merchants]]\n"
            'id = "m_other"\n'
            f'api_key_sha256 = "{hashlib.sha256(OTHER_KEY.encode()).hexdigest()}"\n'
            f"\n[reconciler]\ninterval_ms = {reconciler_interval_ms}\n"
            "initial_backoff_ms = 100\nmax_backoff_ms = 1000\n" + extra
        )
        cfg = tmp_path / f"switch-{port}.toml"
        cfg.write_text(toml)
        sw = Switch(port=port, config=cfg, log=tmp_path / f"switch-{port}.log")
        sw.start()
        started.append(sw)
        return sw

    yield make
    for sw in started:
        sw.stop()


@contextlib.asynccontextmanager
async def connect(switch: Switch, api_key: str | None = API_KEY) -> AsyncIterator[Client]:
    """A Gateway client for one test, closed after it."""
    chan = grpc.aio.insecure_channel(switch.address)
    try:
        yield Client(gw_grpc.GatewayServiceStub(chan), api_key)
    finally:
        await chan.close()
