"""Run results made from known latencies, through the same merge the runner uses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from bench import runner
from bench.config import Load, RunConfig, Target
from bench.scenarios import SCENARIOS
from bench.stats import CallStats, expected

MakeRun = Callable[..., dict[str, Any]]


def make_run(
    *,
    latencies_us: Sequence[int],
    duration_s: float = 1.0,
    processes: int = 1,
    op: str = "authorize",
    code: str = "OK",
    overhead_us: int | None = None,
    open_rate: float | None = None,
    last_end_s: float = 0.0,
    unavailable_us: Sequence[int] = (),
) -> dict[str, Any]:
    """One run's merged figures: each process sent all of `latencies_us` (answered `code`) and
    `unavailable_us` (answered UNAVAILABLE), its last call ending `last_end_s` after the measured
    part began. A closed loop, or an open one at `open_rate`."""
    mode = "closed" if open_rate is None else "open"
    cfg = RunConfig(
        target=Target(address="127.0.0.1:1"),
        load=Load(
            mode=mode,
            rate=open_rate or 0.0,
            duration_s=duration_s,
            processes=processes,
            concurrency=max(32, processes),
        ),
        scenario=SCENARIOS["authorize"],
    )
    results = []
    for _ in range(processes):
        stats = CallStats()
        status = "CAPTURED" if code == "OK" else ""
        for latency in latencies_us:
            ok = expected("Authorize", op, code, status)
            stats.add(latency, code, status, overhead_us, expected=ok)
        for latency in unavailable_us:
            stats.add(latency, "UNAVAILABLE", "", overhead_us, expected=False)
        results.append(
            {
                "stats": [{"rpc": "Authorize", "op": op, **stats.export()}],
                "lag": "",
                "slot_wait": "",
                "measure_start_ns": 0,
                "last_end_ns": int(last_end_s * 1_000_000_000),
                "exhausted": False,
                "calls_total": len(latencies_us) + len(unavailable_us),
                "cpu_s": 0.001 * (len(latencies_us) + len(unavailable_us)),
            }
        )
    return runner.merge_results(cfg, results, [])


@pytest.fixture
def run_of() -> MakeRun:
    return make_run
