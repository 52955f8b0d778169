"""The processes under test (`--watch-pid`): resident memory and CPU time, read once per progress
interval, and what they come to over the measured part of a run.

CPU is the process's own (every thread, user and system) from /proc/PID/stat: divided by the
calls measured, it says where the time goes, process by process (the switch, Redis, a worker),
in the same unit as the echo server's CPU per call that the calibration reports.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

# Cores kept busy by processes a run does not account for (neither watched nor generators),
# above which the run, and bench compare, say the target may have lacked CPU.
OTHER_CORES_WARNING = 0.25


def read_rss_kib(pid: int) -> int | None:
    """The process's resident set in KiB (VmRSS of /proc/PID/status); None when it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def read_cpu_s(pid: int) -> float | None:
    """The process's CPU time so far (user + system, all threads); None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
        # The command name (field 2) is in parentheses and may hold spaces or ')': the fields
        # are counted from after its last ')'. utime and stime are fields 14 and 15.
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S
    except (OSError, ValueError, IndexError):
        return None


def read_machine_busy_s() -> float | None:
    """CPU time the whole machine has spent busy so far, all cores (the first line of
    /proc/stat: everything but idle and I/O wait); None without /proc."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            head = f.readline().split()
        # cpu user nice system idle iowait irq softirq steal (guest time is inside user's)
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in head[1:9])
        return (user + nice + system + irq + softirq + steal) / _TICKS_PER_S
    except (OSError, ValueError, IndexError):
        return None


def sample(watch: Sequence[tuple[str, int]], since: float) -> dict[str, Any]:
    """One reading: per watched process, by its label, resident KiB and CPU seconds; the
    machine's busy CPU seconds; and when it was taken, in seconds after `since` (monotonic).

    The time is the reading's own, not its interval's nominal end: the last interval of a run is
    cut short where the load stops, and CPU over a nominal span would read low."""
    return {
        "rss_kib": {label: read_rss_kib(pid) for label, pid in watch},
        "cpu_s": {label: read_cpu_s(pid) for label, pid in watch},
        "machine_busy_s": read_machine_busy_s(),
        "read_s": round(time.monotonic() - since, 4),
    }


def machine_cores(timeline: Sequence[Mapping[str, Any]]) -> float | None:
    """Cores the whole machine kept busy over the measured part (from the last warm-up reading,
    or the first measured one, to the last): the target, the generators and anything else."""
    rows = [r for r in timeline if r.get("machine_busy_s") is not None]
    warm = [r for r in rows if r["phase"] == "warm-up"]
    measured = [r for r in rows if r["phase"] == "measure"]
    if not measured:
        return None
    base, end = (warm[-1] if warm else measured[0]), measured[-1]
    seconds = _span(base, end)
    if seconds is None:
        return None
    return round((float(end["machine_busy_s"]) - float(base["machine_busy_s"])) / seconds, 3)


def _span(base: Mapping[str, Any], end: Mapping[str, Any]) -> float | None:
    """Seconds between two readings, by the times they were taken; None if unknown."""
    if "read_s" not in base or "read_s" not in end:
        return None
    seconds = float(end["read_s"]) - float(base["read_s"])
    return seconds if seconds > 0 else None


def _calls(row: Mapping[str, Any]) -> int:
    return sum(int(r["calls"]) for r in row.get("rpcs", {}).values())


def summarize(timeline: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per watched process, from the end of the warm-up to the end of the run:
    - resident memory then and at the end, the peak, and the growth from the first to the
      second (the figure behind "memory stays flat");
    - CPU per measured call, and in cores (1.0 = one core busy all the time)."""
    out: dict[str, Any] = {}
    # In the order they were given (each reading lists them so).
    labels = list(dict.fromkeys(label for row in timeline for label in row.get("rss_kib", {})))
    for label in labels:
        rows = [r for r in timeline if label in r.get("rss_kib", {})]
        warm = [r for r in rows if r["phase"] == "warm-up"]
        measured = [r for r in rows if r["phase"] == "measure"]
        readings = [r["rss_kib"][label] for r in rows if r["rss_kib"][label] is not None]
        if not readings:
            out[label] = {"error": "the process was gone before the first reading"}
            continue
        if not measured:
            out[label] = {"error": "no reading in the measured part: shorten --interval"}
            continue
        # The baseline is the last reading of the warm-up, or the first measured one when the
        # run had no warm-up: what the process holds once it has settled under this load.
        base = warm[-1] if warm else measured[0]
        end = measured[-1]
        start_kib, end_kib = base["rss_kib"][label], end["rss_kib"][label]
        if start_kib is None or end_kib is None:
            out[label] = {"error": "the process was gone before the end of the run"}
            continue
        entry: dict[str, Any] = {
            "after_warmup_kib": start_kib,
            "end_kib": end_kib,
            "max_kib": max(readings),
            "growth_ratio": round((end_kib - start_kib) / start_kib, 4) if start_kib else None,
        }
        cpu_start = base.get("cpu_s", {}).get(label)
        cpu_end = end.get("cpu_s", {}).get(label)
        # The calls of every interval after the baseline's, up to the last one read.
        calls = sum(_calls(r) for r in measured if r is not base)
        seconds = _span(base, end)
        if cpu_start is not None and cpu_end is not None and calls:
            entry["cpu_us_per_call"] = round((cpu_end - cpu_start) * 1e6 / calls, 1)
        if cpu_start is not None and cpu_end is not None and seconds is not None:
            entry["cpu_cores"] = round((cpu_end - cpu_start) / seconds, 3)
        out[label] = entry
    return out
