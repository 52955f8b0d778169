"""A bench run's settings: frozen dataclasses, checked once with errors that name the flag."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from typing import Literal

from bench.scenarios import Scenario

Mode = Literal["closed", "open"]
Transport = Literal["unary", "stream", "batch"]
# How unary calls are made: the harness's own HTTP/2 client (bench/h2client.py), or grpc.aio's.
UnaryClient = Literal["lean", "grpcio"]


class ConfigError(ValueError):
    """A setting is missing or out of range; the message names the flag."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where the load goes and how each call is made."""

    address: str
    tls: bool = False
    ca_file: str | None = None
    api_key: str | None = field(default=None, repr=False)
    deadline_ms: int = 5000
    connect_timeout_s: float = 15.0

    def check(self) -> None:
        host, sep, port = self.address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"--target: expected HOST:PORT, got {self.address!r}")
        if self.ca_file is not None and not self.tls:
            raise ConfigError("--ca: only meaningful with --tls")
        if self.ca_file is not None and not os.path.isfile(self.ca_file):
            raise ConfigError(f"--ca: no such file {self.ca_file!r}")
        if self.deadline_ms <= 0:
            raise ConfigError("--deadline-ms: must be positive")
        if self.connect_timeout_s <= 0:
            raise ConfigError("--connect-timeout: must be positive")

    def as_dict(self) -> dict[str, object]:
        # The API key itself never goes into a report.
        return {
            "address": self.address,
            "tls": self.tls,
            "ca_file": self.ca_file,
            "api_key": "set" if self.api_key else None,
            "deadline_ms": self.deadline_ms,
            "connect_timeout_s": self.connect_timeout_s,
        }


@dataclass(frozen=True, slots=True)
class Load:
    """How much load, for how long, from how many generator processes."""

    mode: Mode = "closed"
    concurrency: int = 32
    rate: float = 0.0
    duration_s: float | None = 10.0
    requests: int | None = None
    warmup_s: float = 2.0
    processes: int = 1
    channels: int = 1
    max_inflight: int = 256
    interval_s: float = 1.0
    pool_rate: int = 25_000
    transport: Transport = "unary"
    streams: int = 4
    unary_client: UnaryClient = "lean"

    def check(self) -> None:
        if self.mode not in ("closed", "open"):
            raise ConfigError(f"--mode: expected closed or open, got {self.mode!r}")
        if (self.duration_s is None) == (self.requests is None):
            raise ConfigError("--duration / --requests: give exactly one")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ConfigError("--duration: must be positive")
        if self.requests is not None and self.requests < self.processes:
            raise ConfigError("--requests: must be at least the number of --processes")
        if self.warmup_s < 0:
            raise ConfigError("--warmup: must not be negative")
        if self.processes < 1:
            raise ConfigError("--processes: must be at least 1")
        if self.channels < 1:
            raise ConfigError("--channels: must be at least 1")
        if self.mode == "closed" and self.concurrency < self.processes:
            raise ConfigError("--concurrency: must be at least the number of --processes")
        if self.mode == "open" and self.rate <= 0:
            raise ConfigError("--rate: an open loop needs a positive rate (requests/s)")
        if self.max_inflight < 1:
            raise ConfigError("--max-inflight: must be at least 1")
        if self.interval_s <= 0:
            raise ConfigError("--interval: must be positive")
        if self.transport not in ("unary", "stream", "batch"):
            raise ConfigError(
                f"--transport: expected unary, stream or batch, got {self.transport!r}"
            )
        if self.streams < 1:
            raise ConfigError("--streams: must be at least 1")
        if self.unary_client not in ("lean", "grpcio"):
            raise ConfigError(f"--unary-client: expected lean or grpcio, got {self.unary_client!r}")
        if self.pool_rate < 1:
            raise ConfigError("--pool-rate: must be at least 1")

    def as_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "concurrency": self.concurrency if self.mode == "closed" else None,
            "rate": self.rate if self.mode == "open" else None,
            "duration_s": self.duration_s,
            "requests": self.requests,
            "warmup_s": self.warmup_s,
            "processes": self.processes,
            "channels_per_process": self.channels,
            "max_inflight_per_process": self.max_inflight if self.mode == "open" else None,
            "interval_s": self.interval_s,
            "transport": self.transport,
            "streams_per_channel": self.streams if self.transport != "unary" else None,
            "unary_client": self.unary_client if self.transport == "unary" else None,
        }


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Everything one measured run needs; picklable so generator processes receive it whole."""

    target: Target
    load: Load
    scenario: Scenario
    seed: int = 1
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    # Processes whose resident memory and CPU time are read each interval, as (label, pid): the
    # switch, Redis, a worker. The label names them in the report; "pid N" unless given.
    watch: tuple[tuple[str, int], ...] = ()

    def check(self, *, processes: bool = True) -> None:
        """Refuse what cannot run; `processes=False` leaves the watched processes' existence
        alone (checked once when a command starts: one that exits later gets an error row in
        its runs, rather than ending a series of runs and losing the report)."""
        self.target.check()
        self.load.check()
        labels = [label for label, _ in self.watch]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"--watch-pid: each process needs its own label, got {labels}")
        for _, pid in self.watch if processes else ():
            if not os.path.exists(f"/proc/{pid}/status"):
                raise ConfigError(f"--watch-pid: no process {pid} (or no /proc on this system)")

    def as_dict(self) -> dict[str, object]:
        return {
            "target": self.target.as_dict(),
            "load": self.load.as_dict(),
            "scenario": self.scenario.as_dict(),
            "seed": self.seed,
            # Labels only: pids change from run to run and would make every two reports'
            # settings differ (each run's pids are in its "processes").
            "watch": [label for label, _ in self.watch],
        }


def default_processes() -> int:
    """Generator processes by default: half the cores, leaving the rest to a local server."""
    return max(1, (os.cpu_count() or 2) // 2)
