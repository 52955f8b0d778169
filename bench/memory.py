"""Resident memory of the processes under test, sampled once per progress interval."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


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


def sample(pids: Sequence[int]) -> dict[str, int | None]:
    """One reading per watched process, keyed by pid as text (JSON keys are strings)."""
    return {str(pid): read_rss_kib(pid) for pid in pids}


def summarize(timeline: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per watched process: resident memory at the end of the warm-up, at the end, the peak,
    and the growth from the first to the second (the figure behind "memory stays flat")."""
    out: dict[str, Any] = {}
    pids = {pid for row in timeline for pid in row.get("rss_kib", {})}
    for pid in sorted(pids):
        warm = [r["rss_kib"].get(pid) for r in timeline if r["phase"] == "warm-up"]
        measured = [r["rss_kib"].get(pid) for r in timeline if r["phase"] == "measure"]
        readings = [v for v in warm + measured if v is not None]
        if not measured or not readings:
            continue
        # The baseline is the last reading of the warm-up, or the first measured one when the
        # run had no warm-up: what the process holds once it has settled under this load.
        start = next((v for v in reversed(warm) if v is not None), measured[0])
        end = measured[-1]
        if start is None or end is None:
            out[pid] = {"error": "the process was gone before the end of the run"}
            continue
        out[pid] = {
            "after_warmup_kib": start,
            "end_kib": end,
            "max_kib": max(readings),
            "growth_ratio": round((end - start) / start, 4) if start else None,
        }
    return out
