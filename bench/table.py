"""Plain-text tables of a run, a calibration and a step search, for the terminal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def grid(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to width; the first column left-aligned, the others right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    return "\n".join(out)


def figure_value(name: str, v: float | None) -> str:
    """A report figure as people read it: ratios in %, microseconds as ms, rates with commas."""
    if v is None:
        return "-"
    if name.endswith(("error_ratio", "share", "share_of_echo")):
        return f"{v:.2%}"
    if name.startswith("host.") and name.endswith("_us"):
        return f"{v:,.0f} us"  # the host probe's microseconds would all read 0.0x ms
    if name.endswith("_us"):
        return f"{v / 1000:.2f} ms"
    return f"{v:,.1f}"


def ms(us: float | int | None) -> str:
    """Microseconds shown as milliseconds with two decimals."""
    return "-" if us is None else f"{us / 1000:.2f}"


def _counts(counts: Mapping[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in counts.items()) or "-"


def _pair(figures: Mapping[str, Any] | None) -> str:
    """p50 and p99 of a latency summary as `p50/p99` in ms, or `-` when there is none."""
    return f"{ms(figures['p50'])}/{ms(figures['p99'])}" if figures else "-"


def _latency_row(name: str, r: Mapping[str, Any]) -> list[str]:
    lat = r["latency_us"]
    none = not lat["count"]  # no call had the expected outcome: no latency to show
    return [
        name,
        f"{r['calls']:,}",
        f"{r['rate']:,.1f}",
        *("-" if none else ms(lat[k]) for k in ("p50", "p90", "p99", "p99_9", "max")),
        _pair(r.get("overhead_us")),
        f"{r['errors']:,}",
        _pair(r.get("error_latency_us")),
    ]


_HEADERS = (
    "",
    "calls",
    "expected/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "p99.9 ms",
    "max ms",
    "switch p50/p99 ms",
    "errors",
    "errors p50/p99 ms",
)
# What the columns are over, under the table: the figures people compare with ghz's or k6's.
_LEGEND = (
    "calls: every measured call; expected/s, p50 ... max and switch: the calls with the expected"
    " outcome only; errors: unexpected outcomes, with their own latency"
)


def render_run(result: Mapping[str, Any]) -> str:
    """One run: per RPC and per operation, then outcomes by gRPC status and payment status."""
    head = f"{result['mode']} loop, "
    if result["mode"] == "open":
        head += f"offered {result['offered_rate']:,.0f} calls/s, "
    else:
        head += f"{result['concurrency']} callers, "
    head += (
        f"{result['measure_s']:g} s measured: {result['calls']:,} calls, "
        f"{result['rate']:,.1f} calls/s with the expected outcome, "
        f"{result['errors']:,} unexpected outcomes"
    )
    rows = [_latency_row(rpc, r) for rpc, r in result["rpcs"].items()]
    rows += [_latency_row("  " + name, r) for name, r in result["operations"].items()]
    outcome_rows = [
        [name, _counts(r["codes"]), _counts(r["statuses"])]
        for name, r in result["operations"].items()
    ]
    parts = [
        head,
        grid(_HEADERS, rows),
        _LEGEND,
        "",
        grid(("operation", "gRPC status", "payment status"), outcome_rows),
    ]
    lag = result.get("send_lag_us")
    if lag:
        parts.append(
            f"\nsend lag behind the schedule, the generator's own: p50 {ms(lag['p50'])} ms, "
            f"p99 {ms(lag['p99'])} ms, max {ms(lag['max'])} ms"
        )
    wait = result.get("slot_wait_us")
    if wait and wait["max"] > 1:
        parts.append(
            f"waits for a free slot (--max-inflight calls in flight): p50 {ms(wait['p50'])} ms, "
            f"p99 {ms(wait['p99'])} ms, max {ms(wait['max'])} ms"
        )
    watched = result.get("processes", {})
    if watched:
        parts += ["", render_processes(watched)]
    machine = result.get("machine")
    if machine:
        m = machine
        split = f"generators {m['generator_cores']:.2f}, the rest {m['other_cores']:.2f}"
        if watched:
            split = f"watched {m['watched_cores']:.2f}, " + split
        parts.append(
            f"machine: {machine['busy_cores']:.2f} of {machine['cores']} cores busy over the "
            f"measured part ({split})"
        )
    cpu = result.get("generator_cpu_us_per_call")
    if cpu:
        parts.append(f"generators' own CPU: {cpu:,.0f} us per call")
    parts += [f"warning: {w}" for w in result.get("warnings", [])]
    return "\n".join(parts)


def render_processes(watched: Mapping[str, Any]) -> str:
    """The watched processes (--watch-pid) over the measured part: CPU per call and in cores,
    then resident memory after the warm-up, at the end (with its growth) and at its peak."""
    rows = []
    for name, m in watched.items():
        if "error" in m:
            rows.append([name, m["error"], "", "", "", ""])
            continue
        per_call = m.get("cpu_us_per_call")
        cores = m.get("cpu_cores")
        growth = "" if m["growth_ratio"] is None else f" ({m['growth_ratio']:+.1%})"
        rows.append(
            [
                name,
                "-" if per_call is None else f"{per_call:,.0f} us",
                "-" if cores is None else f"{cores:.2f}",
                f"{m['after_warmup_kib'] / 1024:,.1f} MiB",
                f"{m['end_kib'] / 1024:,.1f} MiB{growth}",
                f"{m['max_kib'] / 1024:,.1f} MiB",
            ]
        )
    headers = ("process", "CPU per call", "cores", "memory after warm-up", "at the end", "peak")
    return grid(headers, rows)


def _rps(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def render_calibration(cal: Mapping[str, Any]) -> str:
    rows = [
        [
            f"round {i + 1}",
            _rps(r["h2load_rps"]),
            _rps(r["harness_rps"]),
            "-" if r["share"] is None else f"{r['share']:.1%}",
        ]
        for i, r in enumerate(cal["rounds"])
    ]
    share = cal["share"]
    rows.append(
        [
            # Each column's own median: the share is the rounds' middle share, not the ratio of
            # the two medians beside it (rounds swing in opposite directions on a shared host).
            "median of each",
            _rps(cal["h2load_rps"]),
            _rps(cal["harness_rps"]),
            "-" if share is None else f"{share:.1%}",
        ]
    )
    head = "echo server (bare grpc.aio on uvloop), same calls in flight:\n"
    body = grid(("", "h2load calls/s", "harness calls/s", "harness/h2load"), rows)
    if cal.get("echo_cpu_us_per_call"):
        body += (
            f"\nCPU per call: echo server {cal['echo_cpu_us_per_call']:,.0f} us,"
            f" harness generators {cal['harness_cpu_us_per_call']:,.0f} us"
        )
    if share is None:
        return head + body + f"\nharness's share of h2load not measured: {cal['note']}"
    verdict = (
        "the harness is the bottleneck: make it leaner"
        if cal["harness_is_bottleneck"]
        else "the harness keeps up"
    )
    return (
        head
        + body
        + f"\nharness at {share:.1%} of h2load (needs >= {cal['required_share']:.0%}): {verdict}"
    )


def render_spread(figures: Mapping[str, Any]) -> str:
    """Each figure over repeated runs: median, min, max and the noise (range / median)."""
    rows = [
        [
            name,
            figure_value(name, f["value"]),
            figure_value(name, f["min"]),
            figure_value(name, f["max"]),
            f"{f['noise']:.1%}",
        ]
        for name, f in figures.items()
    ]
    return "over the repeats:\n" + grid(("figure", "median", "min", "max", "noise"), rows)


def render_steps(
    steps: Sequence[Mapping[str, Any]], capacity: float | None, *, reached_max: bool = False
) -> str:
    rows = [
        [
            f"{s['rate']:,.0f}",
            f"{s['achieved']:,.1f}",
            ms(s["p99_us"]),
            f"{s['error_ratio']:.2%}",
            "held" if s["held"] else "broke: " + s["reason"],
        ]
        for s in steps
    ]
    if capacity is None:
        found = "no rate held the objective"
    elif reached_max:  # nothing broke: the capacity is higher than the search went
        found = f"every rate held up to --max-rate: the capacity is at least {capacity:,.0f}/s"
    else:
        found = f"highest rate that held: {capacity:,.0f} calls/s"
    return (
        grid(("offered/s", "achieved/s", "worst p99 ms", "errors", "objective"), rows)
        + "\n"
        + found
    )


def render_then(then: Mapping[str, Any]) -> str:
    """The open loops run at a share of the capacity: latency and the switch's own share."""
    rows = []
    for i, result in enumerate(then["runs"], 1):
        for rpc, r in result["rpcs"].items():
            lat, over = r["latency_us"], r.get("overhead_us")
            rows.append(
                [
                    str(i),
                    rpc,
                    f"{r['rate']:,.1f}",
                    ms(lat["p50"]),
                    ms(lat["p99"]),
                    ms(lat["p99_9"]),
                    "/".join(ms(over[k]) for k in ("p50", "p99", "p99_9")) if over else "-",
                    f"{r['errors']:,}",
                ]
            )
    head = f"at {then['share']:.0%} of capacity: {then['rate']:,.0f} calls/s offered"
    return (
        head
        + "\n"
        + grid(
            (
                "run",
                "",
                "expected/s",
                "p50 ms",
                "p99 ms",
                "p99.9 ms",
                "switch p50/p99/p99.9 ms",
                "errors",
            ),
            rows,
        )
    )
