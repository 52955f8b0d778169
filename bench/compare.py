"""Two reports figure by figure: the change, the run-to-run noise, and whether it exceeds it.

Noise of a figure is the larger of
- the spread measured in either report: (max - min) / median over its repeated runs
  (`payswitch bench run --repeat N`), and
- a stated floor for that kind of figure (FLOORS), because two or three repeats understate
  the spread and a single run measures none.
A change is "within noise" when its size relative to A is at most that noise. Error ratios are
compared in absolute terms (percentage points), since a relative change of almost nothing means
nothing. The host probe's figures (`host.*`, bench/hostprobe.py) and the calibration's
(`calibration.*`: the echo server's rate, which measures the machine) are called "host faster"
or "host slower", never better or worse: they say whether the two reports can be compared at all.
A report from before rates and latencies left errors out (no `counted` key) compares figure by
figure as before; when it had errors, the rendering says its figures count them, and when it
has a send lag, that its lag includes waits for a free slot (told apart since then).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.processes import OTHER_CORES_WARNING
from bench.report import COUNTED
from bench.table import figure_value, grid

# Stated floors: the run-to-run spread seen on a shared 2-core machine for each kind of figure.
FLOORS: tuple[tuple[str, float], ...] = (
    # The host probe's figures (one sample each, bench/hostprobe.py), judged as a factor either
    # way (2x slower or faster alike): back-to-back probes on one loaded host moved round trips up
    # to 2x and the loop 35%, so a change of host must be larger than that to be called.
    ("hop_", 1.00),
    # CPU per call of a watched process or of the generators: 351-440 us per payment for the
    # same switch in alternating runs on the slower host, 21% of their median (bench/README.md,
    # "Compiling the hot modules with mypyc").
    ("cpu_us_per_call", 0.25),
    ("work_", 0.50),
    ("loop_ms", 0.40),
    ("send_lag", 0.50),
    ("share_of_echo", 0.10),
    ("overhead_p99_9", 0.30),
    ("overhead_p99", 0.20),
    ("overhead_p50", 0.10),
    ("p99_9", 0.30),
    ("p99", 0.20),
    ("p90", 0.10),
    ("p50", 0.10),
    ("max", 0.50),
    ("share", 0.05),
    ("rps", 0.08),
    ("rate", 0.08),
)
ERROR_RATIO_FLOOR = 0.001  # 0.1 percentage point
HIGHER_IS_BETTER = ("rate", "rps", "share", "share_of_echo")
HOST_PREFIX = "host."
# Figures about the machine, not the target: the host probe's, and the calibration's (the echo
# server's rate from h2load and from the harness, and their ratio). Their changes are "host
# faster" or "host slower", never better or worse, so --fail-on-worse does not trip on them.
MACHINE_PREFIXES = (HOST_PREFIX, "calibration.")


@dataclass(frozen=True, slots=True)
class Row:
    """One figure of both reports and the verdict on its change."""

    name: str
    a: float | None
    b: float | None
    change: float | None  # relative to A; absolute for error ratios
    noise: float
    noise_source: str  # "measured" or "stated"
    verdict: str  # better, worse, within noise, only in A, only in B; host faster / host slower


def floor_for(name: str) -> float:
    last = name.rsplit(".", 1)[-1]
    for key, floor in FLOORS:
        if key in last:
            return floor
    return 0.10


def is_error_ratio(name: str) -> bool:
    """`error_ratio`, or one under a prefix (`then.error_ratio`): compared in points."""
    return name.rsplit(".", 1)[-1] == "error_ratio"


def higher_is_better(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return any(last == key or last.endswith(key) for key in HIGHER_IS_BETTER)


def _row(
    name: str, fa: Mapping[str, Any] | None, fb: Mapping[str, Any] | None, floor: float | None
) -> Row:
    if fa is None or fb is None:
        only = "only in B" if fa is None else "only in A"
        a = None if fa is None else float(fa["value"])
        b = None if fb is None else float(fb["value"])
        return Row(name, a, b, None, 0.0, "-", only)
    a, b = float(fa["value"]), float(fb["value"])
    absolute = is_error_ratio(name)
    # --floor is a relative band for the target's figures; error ratios change in points and
    # keep their own floor (0.05 as five points would hide errors going from 0 to 4%).
    machine = name.startswith(MACHINE_PREFIXES)
    if floor is not None and not machine and not absolute:
        stated = floor
    else:
        stated = ERROR_RATIO_FLOOR if absolute else floor_for(name)
    if absolute:
        measured = max(fa["max"] - fa["min"], fb["max"] - fb["min"])
        change: float = b - a
    else:
        measured = max(float(fa["noise"]), float(fb["noise"]))
        change = (b - a) / abs(a) if a else (0.0 if b == 0 else float("inf"))
    noise = max(measured, stated)
    source = "measured" if measured > stated else "stated"
    size = abs(change)
    if name.startswith(HOST_PREFIX) and a > 0 and b > 0:
        size = max(a, b) / min(a, b) - 1  # a factor either way: twice as slow or as fast alike
    if size <= noise:
        verdict = "within noise"
    elif machine:  # host.* are times (higher: slower); calibration.* rates and a share
        verdict = "host faster" if (change > 0) == higher_is_better(name) else "host slower"
    elif (change > 0) == higher_is_better(name):
        verdict = "better"
    else:
        verdict = "worse"
    return Row(name, a, b, change, noise, source, verdict)


def compare(a: Mapping[str, Any], b: Mapping[str, Any], *, floor: float | None = None) -> list[Row]:
    """Every figure of either report, in A's order then B's new ones."""
    fa: Mapping[str, Any] = a.get("figures", {})
    fb: Mapping[str, Any] = b.get("figures", {})
    names = list(fa) + [n for n in fb if n not in fa]
    return [_row(name, fa.get(name), fb.get(name), floor) for name in names]


def config_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Settings that differ between the two reports (dotted names), besides the date: the run's
    own and the bench's software (`software.grpcio`, `software.grpc_experiments`: the bench's
    and the echo server's it started; a switch started apart may run with others)."""

    def flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                flat(f"{prefix}.{key}" if prefix else str(key), inner, out)
        else:
            out[prefix] = value

    ca: dict[str, Any] = {}
    cb: dict[str, Any] = {}
    flat("", a.get("config", {}), ca)
    flat("", b.get("config", {}), cb)
    flat("software", a.get("software", {}), ca)
    flat("software", b.get("software", {}), cb)
    return sorted(k for k in set(ca) | set(cb) if ca.get(k) != cb.get(k))


def busiest_other_cores(report: Mapping[str, Any]) -> float | None:
    """The most cores that processes neither watched nor generators kept busy in any of the
    report's runs that watched processes (run, step and its half-capacity runs alike)."""
    found: list[float] = []

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            machine = value.get("machine")
            if value.get("processes") and isinstance(machine, Mapping) and machine:
                found.append(float(machine["other_cores"]))
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk({k: v for k, v in report.items() if k != "machine"})  # the report's own is the host's
    return max(found) if found else None


def errors_in_rates(report: Mapping[str, Any]) -> float | None:
    """The highest error ratio of a report whose rates and latencies counted its errors (one
    written before they were left out), or None when its figures are of expected outcomes or
    it had no errors."""
    if report.get("counted") == COUNTED:
        return None
    figures: Mapping[str, Any] = report.get("figures", {})
    worst = max((float(f["max"]) for n, f in figures.items() if is_error_ratio(n)), default=0.0)
    return worst or None


def _change(name: str, row: Row) -> str:
    if row.change is None:
        return "-"
    if is_error_ratio(name):
        return f"{row.change * 100:+.2f} pp"
    if row.change == float("inf"):
        return "new"
    return f"{row.change:+.1%}"


def render(a: Mapping[str, Any], b: Mapping[str, Any], rows: list[Row]) -> str:
    def who(tag: str, r: Mapping[str, Any]) -> str:
        commit = (r.get("git") or {}).get("commit") or "?"
        return f"{tag}: {r.get('date', '?')} commit {commit[:10]}  {r.get('command', '')}"

    table_rows = [
        [
            row.name,
            figure_value(row.name, row.a),
            figure_value(row.name, row.b),
            _change(row.name, row),
            (f"±{row.noise * 100:.2f} pp" if is_error_ratio(row.name) else f"±{row.noise:.0%}")
            + f" {row.noise_source}",
            row.verdict,
        ]
        for row in rows
    ]
    parts = [who("A", a), who("B", b)]
    differs = config_differences(a, b)
    if differs:
        parts.append("settings differ: " + ", ".join(differs))
    parts.append(grid(("figure", "A", "B", "change", "noise", "verdict"), table_rows))
    better = sum(r.verdict == "better" for r in rows)
    worse = sum(r.verdict == "worse" for r in rows)
    parts.append(
        f"{better} better, {worse} worse, the rest within noise, in one report only or the host's"
    )
    host = [
        f"{r.name} {r.verdict.removeprefix('host ')}" for r in rows if r.verdict.startswith("host ")
    ]
    if host:
        parts.append(
            f"B's host differed from A's ({', '.join(host)}): part of any change may be the "
            "host's, not the target's"
        )
    for tag, r in (("A", a), ("B", b)):
        counted = errors_in_rates(r)
        if counted is not None:
            parts.append(
                f"{tag} was written before errors were counted apart: its rates and latencies "
                f"count its unexpected outcomes too (error ratio up to {counted:.2%}), so they "
                "are not like for like with the other report's"
            )
        if r.get("counted") != COUNTED and "send_lag_p99_us" in r.get("figures", {}):
            parts.append(
                f"{tag} was written before an open loop's waits for a free --max-inflight slot "
                "were told apart: its send lag includes them, so it is not like for like with "
                "the other report's"
            )
        other = busiest_other_cores(r)
        if other is not None and other > OTHER_CORES_WARNING:
            parts.append(
                f"{tag}: processes neither watched nor generators kept up to {other:.2f} cores "
                "busy during its runs: unless they belong to the target, its figures may be low"
            )
    return "\n".join(parts)
