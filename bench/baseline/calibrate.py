"""The echo ceiling measured twice in one go: by h2load and by the harness, rounds interleaved."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TextIO

from bench import payloads, runner
from bench.baseline import h2load
from bench.config import Load, RunConfig, Target, UnaryClient, default_processes
from bench.scenarios import SCENARIOS, build_plan

# Below this share of h2load's rate the harness, not the server, sets the pace (issue 4).
REQUIRED_SHARE = 0.65


@dataclass(frozen=True, slots=True)
class CalibrationConfig:
    """How long and how hard to drive the echo server with each generator."""

    seconds: float = 10.0
    warmup_s: float = 2.0
    rounds: int = 2
    concurrency: int = 32
    processes: int = default_processes()
    channels: int = 1
    deadline_ms: int = 5000
    unary_client: UnaryClient = "lean"

    def as_dict(self) -> dict[str, object]:
        return {
            "seconds": self.seconds,
            "warmup_s": self.warmup_s,
            "rounds": self.rounds,
            "concurrency": self.concurrency,
            "processes": self.processes,
            "channels_per_process": self.channels,
            "deadline_ms": self.deadline_ms,
            "unary_client": self.unary_client,
        }


class EchoProcess:
    """The echo server in its own process on a free port, stopped on exit."""

    def __init__(self, listen: str = "127.0.0.1:0") -> None:
        self.listen = listen
        self.address = ""
        self.served = -1
        self.cpu_s = 0.0
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> EchoProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.baseline", "--listen", self.listen],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith("echo server listening on "):
            self._stop()
            raise runner.BenchError(f"the echo server did not start: {line!r}")
        self.address = line.rsplit(" ", 1)[1].strip()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        proc.terminate()
        try:
            rest, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate(timeout=5)
        for line in rest.splitlines():
            if line.startswith("echo server served "):
                words = line.split()
                self.served = int(words[3])
                self.cpu_s = float(words[6])


def authorize_message() -> bytes:
    """One Authorize request as the harness sends it: the body h2load repeats."""
    plan = build_plan(
        scenario=SCENARIOS["authorize"],
        count=1,
        key_prefix="bench-h2load-",
        seed=1,
        replay_lag=1,
    )
    return plan[0][1]


def harness_config(address: str, cfg: CalibrationConfig) -> RunConfig:
    """The harness run against the echo server: authorize only, closed loop."""
    return RunConfig(
        target=Target(address=address, deadline_ms=cfg.deadline_ms),
        load=Load(
            mode="closed",
            concurrency=cfg.concurrency,
            duration_s=cfg.seconds,
            warmup_s=cfg.warmup_s,
            processes=cfg.processes,
            channels=cfg.channels,
            unary_client=cfg.unary_client,
        ),
        scenario=SCENARIOS["authorize"],
    )


def calibrate(cfg: CalibrationConfig, *, out: TextIO | None = sys.stderr) -> dict[str, Any]:
    """h2load's and the harness's rate against the echo server, and the harness's share.

    Without h2load installed the harness's echo rate is still measured (the ceiling the target
    is set beside); the share is then None and the report says why.
    """
    have_h2load = h2load.available()
    tools = ("h2load", "harness") if have_h2load else ("harness",)
    rounds: list[dict[str, Any]] = []
    message = authorize_message()
    h2_calls = harness_calls = 0
    with EchoProcess() as echo:
        for r in range(cfg.rounds):
            row: dict[str, Any] = {"h2load_rps": None, "share": None}
            # Alternate who goes first so that drift in the machine's load hits both alike.
            for tool in tools if r % 2 == 0 else tools[::-1]:
                if out is not None:
                    print(f"calibration round {r + 1}/{cfg.rounds}: {tool} -> echo", file=out)
                if tool == "h2load":
                    result = h2load.run(
                        address=echo.address,
                        path=payloads.method_path("Authorize"),
                        message=message,
                        seconds=cfg.seconds,
                        warmup_s=cfg.warmup_s,
                        concurrency=cfg.concurrency,
                        connections=cfg.processes * cfg.channels,
                        # The same deadline as the harness's calls, so the server does the
                        # same work (a deadline timer) for both generators.
                        headers=(f"grpc-timeout: {cfg.deadline_ms}m",),
                    )
                    row["h2load_rps"] = result.rate
                    row["h2load"] = result.as_dict()
                    h2_calls += result.succeeded
                else:
                    figures = runner.run(harness_config(echo.address, cfg), out=out)
                    auth = figures["rpcs"].get("Authorize", {})
                    row["harness_rps"] = figures["rate"]
                    row["harness_latency_us"] = auth.get("latency_us")
                    row["harness_errors"] = figures["errors"]
                    row["harness_cpu_us_per_call"] = figures["generator_cpu_us_per_call"]
                    harness_calls += figures["calls"]
                time.sleep(0.5)
            if row["h2load_rps"]:
                row["share"] = round(row["harness_rps"] / row["h2load_rps"], 3)
            rounds.append(row)
    harness_rps = statistics.median(r["harness_rps"] for r in rounds)
    h2_rps = statistics.median(r["h2load_rps"] for r in rounds) if have_h2load else None
    # Each round pairs the two tools a few seconds apart, so the median of the rounds' shares
    # is steadier under a drifting machine load than a ratio of medians taken across rounds.
    share = statistics.median(r["share"] for r in rounds) if have_h2load else None
    return {
        "config": cfg.as_dict(),
        "h2load_command": rounds[0]["h2load"]["command"] if have_h2load else None,
        "h2load_rps": round(h2_rps, 1) if h2_rps is not None else None,
        "harness_rps": round(harness_rps, 1),
        "share": share,
        "required_share": REQUIRED_SHARE,
        "harness_is_bottleneck": share < REQUIRED_SHARE if share is not None else None,
        "note": None if have_h2load else h2load.INSTALL_HINT,
        "rounds": rounds,
        # A sanity check that h2load's calls really reached the handler: the server counts
        # every call it answered, warm-up included, so this is at least the two sums.
        "echo_served_calls": echo.served,
        # CPU per call of the server and of the harness's generators: which one is the heavier
        # side, in a figure that hardly moves with what else the machine is doing.
        "echo_cpu_us_per_call": round(echo.cpu_s * 1e6 / echo.served, 1)
        if echo.served > 0
        else None,
        "harness_cpu_us_per_call": statistics.median(
            r["harness_cpu_us_per_call"] or 0.0 for r in rounds
        ),
        "measured_calls": h2_calls + harness_calls,
    }
