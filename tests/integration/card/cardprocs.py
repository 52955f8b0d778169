"""Card integration helpers: the simulator and the card worker as real processes, a gRPC stub."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from adapters.card.host import HostRecord, load_state
from adapters.sdk import convert
from adapters.sdk.types import InquireRequest, OperationResult, OperationType
from payswitch.channel.v1 import channel_service_pb2_grpc as ch_grpc
from tests.support import free_port, spawn, stop_process, wait_for_port

SLOW_SECONDS = 1.5
RESPONSE_TIMEOUT = 0.5


class _Process:
    """A child process that can be killed (SIGKILL) or stopped (SIGTERM) and restarted."""

    proc: subprocess.Popen[bytes] | None

    def kill(self) -> None:
        """SIGKILL: no goodbye, connections just drop."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class SimulatorProcess(_Process):
    """`python -m adapters.card.simulator` on a fixed port, so it can be killed and restarted."""

    port: int
    state: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["-m", "adapters.card.simulator", "--listen", f"127.0.0.1:{self.port}"]
        args += ["--state", str(self.state), "--slow-seconds", str(SLOW_SECONDS)]
        args += ["--frame-timeout", "0.5"]
        with self.log.open("ab") as out:
            self.proc = spawn(args, stdout=out, stderr=subprocess.STDOUT)
        wait_for_port(self.port, proc=self.proc)

    def purchases(self, rrn: str) -> list[HostRecord]:
        """The authorizations or sales the host remembers with this RRN."""
        return [r for r in load_state(self.state).values() if r.rrn == rrn and r.de3 == "000000"]


@dataclass
class CardWorker(_Process):
    """`payswitch adapter card` as a process, with short timeouts for tests."""

    port: int
    acquirer_port: int
    saf_file: Path
    log: Path
    extra: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        args = ["-m", "switch", "adapter", "card", "--listen", self.address]
        args += ["--acquirer", f"127.0.0.1:{self.acquirer_port}", "--terminal-id", "TERM0001"]
        args += ["--merchant-id", "MERCHANT000001", "--saf-file", str(self.saf_file)]
        args += ["--response-timeout", str(RESPONSE_TIMEOUT), "--connect-timeout", "1"]
        args += ["--reconnect-base", "0.05", "--reconnect-cap", "0.3", "--frame-timeout", "0.5"]
        args += ["--saf-retry-base", "0.1", "--saf-retry-cap", "0.4", *self.extra]
        with self.log.open("ab") as out:
            self.proc = spawn(args, stdout=out, stderr=subprocess.STDOUT)
        wait_for_port(self.port, timeout=30, proc=self.proc)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class CardStack:
    simulator: SimulatorProcess
    worker: CardWorker


def make_stack(folder: Path, acquirer_port: int | None = None) -> CardStack:
    sim = SimulatorProcess(free_port(), folder / "host.jsonl", folder / "simulator.log")
    worker = CardWorker(
        free_port(), acquirer_port or sim.port, folder / "card-saf.jsonl", folder / "worker.log"
    )
    return CardStack(sim, worker)


@asynccontextmanager
async def channel(worker: CardWorker) -> AsyncIterator[ch_grpc.ChannelServiceStub]:
    async with grpc.aio.insecure_channel(worker.address) as chan:
        yield ch_grpc.ChannelServiceStub(chan)


async def inquire(stub: ch_grpc.ChannelServiceStub, reference: str) -> OperationResult:
    request = InquireRequest(reference, "m1", OperationType.AUTHORIZE, "", None)
    response = await stub.Inquire(convert.inquire_request_to_proto(request), timeout=5)
    return convert.result_from_proto(response.result)


async def settled(
    stub: ch_grpc.ChannelServiceStub, reference: str, within: float = 20.0
) -> OperationResult:
    """Inquire until the outcome is no longer PENDING."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await inquire(stub, reference)
        if result.status.name != "PENDING":
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{reference} still PENDING after {within}s: {result.message}")
        await asyncio.sleep(0.05)
