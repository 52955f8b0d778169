"""Runs one measurement: starts the generator processes, shows progress, merges their figures."""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, TextIO

from bench import histo, processes, schedule, stats
from bench.config import RunConfig
from bench.worker import process_main

READY_TIMEOUT_S = 60.0
START_SLACK_NS = 200_000_000


class BenchError(RuntimeError):
    """A generator process failed, or the target could not be reached."""


@dataclass
class _Interval:
    """One progress interval's figures from every process, by RPC."""

    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    hists: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, payload: dict[str, tuple[int, int, str]]) -> None:
        for rpc, (calls, errors, hist) in payload.items():
            self.calls[rpc] += calls
            self.errors[rpc] += errors
            self.hists[rpc].append(hist)


class ProgressLine:
    """The live line: rate in the last interval, p99 so far, unexpected outcomes so far."""

    def __init__(self, out: TextIO | None, interval_s: float, warmup_s: float) -> None:
        self.out = out
        self.tty = bool(out is not None and out.isatty())
        self.interval_s = interval_s
        self.warmup_s = warmup_s
        self.cumulative = histo.new_histogram()
        self.errors = 0
        self._measuring = False
        self._last_print = 0.0

    def update(self, k: int, interval: _Interval) -> None:
        t = (k + 1) * self.interval_s
        phase = "warm-up" if k * self.interval_s < self.warmup_s else "measure"
        if phase == "measure" and not self._measuring:
            # The figures so far start again where the measurement starts.
            self._measuring = True
            self.cumulative.reset()
            self.errors = 0
        for hists in interval.hists.values():
            for text in hists:
                self.cumulative.add(histo.decode(text))
        self.errors += sum(interval.errors.values())
        if self.out is None:
            return
        # Like the report's: the rate and the p99 of the calls with the expected outcome.
        rate = (sum(interval.calls.values()) - sum(interval.errors.values())) / self.interval_s
        p99 = self.cumulative.get_value_at_percentile(99.0) / 1000
        line = (
            f"{t:7.1f}s {phase:8} {rate:9,.0f} calls/s   p99 so far {p99:8.2f} ms"
            f"   errors {self.errors}"
        )
        if self.tty:
            self.out.write("\r" + line)
        elif time.monotonic() - self._last_print >= 5.0:
            self.out.write(line + "\n")
            self._last_print = time.monotonic()
        self.out.flush()

    def close(self) -> None:
        if self.out is not None and self.tty:
            self.out.write("\n")
            self.out.flush()


def _timeline(
    intervals: dict[int, _Interval],
    interval_s: float,
    warmup_s: float,
    watched: dict[int, dict[str, dict[str, Any]]] | None = None,
) -> list[Any]:
    rows: list[dict[str, Any]] = []
    for k in sorted(intervals):
        iv = intervals[k]
        rpcs: dict[str, Any] = {}
        for rpc in sorted(iv.calls):
            h = histo.merge(iv.hists[rpc])
            s = histo.summarize(h)
            rpcs[rpc] = {
                "calls": iv.calls[rpc],
                "errors": iv.errors[rpc],
                "p50_us": s["p50"],
                "p99_us": s["p99"],
                "max_us": s["max"],
            }
        start = k * interval_s
        row: dict[str, Any] = {
            "t_s": round(start + interval_s, 3),
            "phase": "warm-up" if start < warmup_s else "measure",
            "rpcs": rpcs,
        }
        if watched and k in watched:
            row.update(watched[k])  # rss_kib and cpu_s by watched process, machine_busy_s
        rows.append(row)
    return rows


def merge_results(
    cfg: RunConfig, results: list[dict[str, Any]], timeline: list[Any]
) -> dict[str, Any]:
    """One run's figures from its processes' results."""
    load = cfg.load
    by_rpc: dict[str, list[Any]] = defaultdict(list)
    by_op: dict[str, list[Any]] = defaultdict(list)
    for result in results:
        for export in result["stats"]:
            by_rpc[export["rpc"]].append(export)
            by_op[f"{export['rpc']}/{export['op']}"].append(export)
    measure_start = min((r["measure_start_ns"] for r in results), default=0)
    last_end = max((r["last_end_ns"] for r in results), default=0)
    exhausted = any(r["exhausted"] for r in results)
    warnings: list[str] = []
    took_s = (last_end - measure_start) / schedule.NS_PER_S
    if load.duration_s is not None and not exhausted:
        measure_s = load.duration_s
        if load.mode == "open" and took_s > load.duration_s:
            # Every scheduled call is sent, however far behind: the rate is what the target
            # did over the time its calls took, not the offered rate over the nominal time.
            measure_s = took_s
            if took_s > load.duration_s * 1.05:
                warnings.append(
                    f"the target fell behind the offered rate: the measured calls took "
                    f"{took_s:.1f} s, not {load.duration_s:g}; calls/s is what it achieved"
                )
    else:
        measure_s = max(1e-9, took_s)
    if exhausted:
        warnings.append(
            "a generator ran out of ready-made requests before the end: raise --pool-rate"
        )
    # Rates, like latencies, are of the calls with the expected outcome: a target that fails
    # calls at once must not look faster for it. Errors are counted, with a latency of their own.
    rpcs = {}
    for rpc in sorted(by_rpc):
        merged = stats.merge_exports(by_rpc[rpc])
        merged["rate"] = round((merged["calls"] - merged["errors"]) / measure_s, 1)
        rpcs[rpc] = merged
    operations = {}
    for name in sorted(by_op):
        merged = stats.merge_exports(by_op[name])
        del merged["histogram"], merged["overhead_histogram"]
        merged["rate"] = round((merged["calls"] - merged["errors"]) / measure_s, 1)
        operations[name] = merged
    calls = sum(r["calls"] for r in rpcs.values())
    errors = sum(r["errors"] for r in rpcs.values())
    lag = histo.merge(r["lag"] for r in results)
    slot_wait = histo.merge(r["slot_wait"] for r in results)
    calls_total = sum(r["calls_total"] for r in results)
    cpu_s = sum(r["cpu_s"] for r in results)
    watched = processes.summarize(timeline)
    for label, pid in cfg.watch:
        if label in watched:
            watched[label]["pid"] = pid
    machine = _machine(timeline, watched, cpu_s / (load.warmup_s + measure_s))
    # Without watched processes a local target is itself among "the rest": no warning then.
    if watched and machine and machine["other_cores"] > processes.OTHER_CORES_WARNING:
        warnings.append(
            f"processes neither watched nor generators kept {machine['other_cores']:.2f} cores "
            "busy during the measured part: unless they belong to the target, they took CPU "
            "from it and its figures may be low"
        )
    return {
        "mode": load.mode,
        "offered_rate": load.rate if load.mode == "open" else None,
        "concurrency": load.concurrency if load.mode == "closed" else None,
        "measure_s": round(measure_s, 3),
        "calls": calls,
        "rate": round((calls - errors) / measure_s, 1),
        "errors": errors,
        "error_ratio": round(errors / calls, 6) if calls else 0.0,
        "rpcs": rpcs,
        "operations": operations,
        # Open loop: how late requests left on the generator's own account, and how long due
        # requests waited for a free slot (--max-inflight calls were in flight): the latter is
        # the target's doing, and is in the latency too.
        "send_lag_us": histo.summarize(lag) if lag.get_total_count() else None,
        "slot_wait_us": histo.summarize(slot_wait) if slot_wait.get_total_count() else None,
        # What the generators themselves cost: their CPU per call, warm-up included. A figure
        # to watch when making the harness leaner; it hardly moves with the machine's load.
        "generator_cpu_us_per_call": round(cpu_s * 1e6 / calls_total, 1) if calls_total else None,
        "timeline": timeline,
        "processes": watched,
        "machine": machine,
        "warnings": warnings,
    }


def _machine(
    timeline: list[Any], watched: dict[str, Any], generator_cores: float
) -> dict[str, Any]:
    """How busy the machine was over the measured part, and by whom: the watched processes,
    the generators (their CPU over the whole run, warm-up included) and the rest. When the
    target is not watched, it is in the rest."""
    busy = processes.machine_cores(timeline)
    if busy is None:
        return {}
    watched_cores = sum(m.get("cpu_cores", 0.0) for m in watched.values())
    return {
        "cores": os.cpu_count(),
        "busy_cores": busy,
        "watched_cores": round(watched_cores, 3),
        "generator_cores": round(generator_cores, 3),
        "other_cores": round(max(0.0, busy - watched_cores - generator_cores), 3),
    }


def run(
    cfg: RunConfig,
    *,
    out: TextIO | None = sys.stderr,
) -> dict[str, Any]:
    """Run one measurement and return its merged figures (see `merge_results`)."""
    cfg.check(processes=False)  # checked as the command started
    load = cfg.load
    ctx = multiprocessing.get_context("spawn")
    events: Any = ctx.Queue()
    go = ctx.Event()
    start_at = ctx.Value("q", 0)
    procs = [
        ctx.Process(
            target=process_main,
            args=(cfg, i, events, go, start_at),
            daemon=True,
            name=f"bench-generator-{i}",
        )
        for i in range(load.processes)
    ]
    for p in procs:
        p.start()
    progress = ProgressLine(out, load.interval_s, load.warmup_s)
    intervals: dict[int, _Interval] = defaultdict(_Interval)
    watched: dict[int, dict[str, dict[str, Any]]] = {}
    reported = [-1] * load.processes
    shown = -1
    results: dict[int, dict[str, Any]] = {}
    ready = 0
    ready_by = time.monotonic() + READY_TIMEOUT_S
    try:
        while len(results) < load.processes:
            try:
                kind, index, k, payload = events.get(timeout=0.2)
            except queue_module.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise BenchError(f"{dead[0].name} exited with {dead[0].exitcode}") from None
                if ready < load.processes and time.monotonic() > ready_by:
                    raise BenchError("generators were not ready in time") from None
                continue
            if kind == "error":
                raise BenchError(f"generator {index} failed:\n{payload}")
            if kind == "ready":
                ready += 1
                if ready == load.processes:
                    start_at.value = time.monotonic_ns() + START_SLACK_NS
                    go.set()
            elif kind == "tick":
                intervals[k].add(payload)
                reported[index] = max(reported[index], k)
                while shown < min(reported):
                    shown += 1
                    watched[shown] = processes.sample(cfg.watch, start_at.value / 1e9)
                    progress.update(shown, intervals[shown])
            elif kind == "done":
                results[index] = payload
    finally:
        progress.close()
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join(5)
        events.close()
        events.join_thread()
    timeline = _timeline(intervals, load.interval_s, load.warmup_s, watched)
    return merge_results(cfg, [results[i] for i in sorted(results)], timeline)
