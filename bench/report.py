"""The JSON report (machine, versions, commit, config, every figure) and the table people read."""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import shutil
import socket
import statistics
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from typing import Any

SCHEMA = "payswitch-bench/1"
# What a report's rates and latencies are of, since they left unexpected outcomes out (before,
# they were of every call, errors included, and reports had no `counted` key).
COUNTED = "calls with the expected outcome"
REPO = pathlib.Path(__file__).resolve().parent.parent
LATENCY_FIGURES = ("p50", "p90", "p99", "p99_9", "max")


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def machine() -> dict[str, Any]:
    """What the figures were measured on; load average says how busy the machine already was."""
    cpu_model = ""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_model": cpu_model or platform.processor(),
        "cpu_count": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "load_average_at_start": load,
    }


def software() -> dict[str, Any]:
    versions: dict[str, Any] = {"python": sys.version.split()[0]}
    for dist in ("grpcio", "protobuf", "uvloop", "hdrhistogram"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    # gRPC's experiments change its cost per call (adapters/__init__.py sets the default); the
    # echo server started by this process, the ceiling, runs with these.
    versions["grpc_experiments"] = os.environ.get("GRPC_EXPERIMENTS")
    versions["h2load"] = None
    exe = shutil.which("h2load")
    if exe is not None:
        done = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
        versions["h2load"] = done.stdout.strip() or None
    return versions


def git() -> dict[str, Any]:
    """The commit the harness ran from, and whether tracked files differed from it."""

    def _git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(REPO), *args],
                capture_output=True,
                text=True,
                check=False,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(dirty) if dirty is not None else None}


def new_report(kind: str, argv: Sequence[str], config: Mapping[str, Any]) -> dict[str, Any]:
    """The report's frame: what, when, where, from which commit, with which settings."""
    return {
        "schema": SCHEMA,
        "kind": kind,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["payswitch", "bench", *argv]),
        "machine": machine(),
        "software": software(),
        "git": git(),
        "config": dict(config),
        "counted": COUNTED,
    }


def add_host_figures(report: dict[str, Any]) -> None:
    """The host probe's figures among the report's (`host.*`), so compare shows a change of host."""
    probe = report.get("machine", {}).get("probe") or {}
    figures = report.setdefault("figures", {})
    figures.update(spread([{f"host.{k}": float(v) for k, v in probe.items()}]))


def finish(report: dict[str, Any]) -> None:
    """Stamp the end: the load average then says whether the machine got busier meanwhile."""
    report["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    try:
        report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        report["machine"]["load_average_at_end"] = []


def run_figures(result: Mapping[str, Any]) -> dict[str, float]:
    """The comparable figures of one run, flat: rate, error ratio, per-RPC rate and latency."""
    figures: dict[str, float] = {
        "rate": float(result["rate"]),
        "error_ratio": float(result["error_ratio"]),
    }
    for rpc, r in result["rpcs"].items():
        figures[f"{rpc}.rate"] = float(r["rate"])
        if not r["latency_us"]["count"]:
            continue  # no call with the expected outcome: no latency (nor switch time) to compare
        for name in LATENCY_FIGURES:
            figures[f"{rpc}.{name}_us"] = float(r["latency_us"][name])
        if r.get("overhead_us"):
            for name in ("p50", "p99", "p99_9"):
                figures[f"{rpc}.overhead_{name}_us"] = float(r["overhead_us"][name])
    if result.get("generator_cpu_us_per_call"):
        figures["generator_cpu_us_per_call"] = float(result["generator_cpu_us_per_call"])
    for label, m in result.get("processes", {}).items():
        if "cpu_us_per_call" in m:
            figures[f"process.{label}.cpu_us_per_call"] = float(m["cpu_us_per_call"])
    lag = result.get("send_lag_us")
    if lag:
        figures["send_lag_p99_us"] = float(lag["p99"])
    return figures


def spread(values_per_run: Iterable[Mapping[str, float]]) -> dict[str, dict[str, Any]]:
    """Each figure over repeated runs: median, min, max and noise (range / median)."""
    by_name: dict[str, list[float]] = {}
    for figures in values_per_run:
        for name, value in figures.items():
            by_name.setdefault(name, []).append(value)
    out: dict[str, dict[str, Any]] = {}
    for name, values in by_name.items():
        median = statistics.median(values)
        low, high = min(values), max(values)
        noise = (high - low) / abs(median) if median else 0.0
        out[name] = {
            "value": median,
            "min": low,
            "max": high,
            "runs": len(values),
            "noise": round(noise, 4),
        }
    return out


def add_runs(
    report: dict[str, Any], runs: list[dict[str, Any]], calibration: Mapping[str, Any] | None
) -> None:
    """Put repeated runs, their figures and the calibration into a report."""
    report["calibration"] = dict(calibration) if calibration is not None else None
    report["runs"] = runs
    per_run = [run_figures(r) for r in runs]
    if calibration is not None:
        for figures in per_run:
            if calibration["share"] is not None:
                figures["calibration.h2load_rps"] = float(calibration["h2load_rps"])
                figures["calibration.share"] = float(calibration["share"])
            figures["calibration.harness_rps"] = float(calibration["harness_rps"])
            if runs[0]["mode"] == "closed" and calibration["harness_rps"]:
                figures["share_of_echo"] = round(
                    figures["rate"] / float(calibration["harness_rps"]), 4
                )
    report["figures"] = spread(per_run)


def write(report: Mapping[str, Any], path: str | os.PathLike[str]) -> pathlib.Path:
    out = pathlib.Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return out


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    data = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a payswitch bench report ({SCHEMA})")
    return data


def default_path(kind: str) -> pathlib.Path:
    """bench/results/<kind>-<time>.local.json under the current directory (git ignores them)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = pathlib.Path("bench/results") if pathlib.Path("bench").is_dir() else pathlib.Path()
    return base / f"{kind}-{stamp}.local.json"
