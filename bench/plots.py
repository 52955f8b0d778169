"""Optional PNG plots of a run (latency over time and its distribution) if matplotlib is there."""

from __future__ import annotations

import importlib
import pathlib
from collections.abc import Mapping
from typing import Any

from bench import histo

Series = dict[str, list[tuple[float, float]]]


def matplotlib_pyplot() -> Any | None:
    """matplotlib.pyplot on the file-only Agg backend, or None when matplotlib is not installed."""
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        return None
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def timeline_series(result: Mapping[str, Any]) -> dict[str, Series]:
    """Per RPC, (seconds since start, ms) points of p50, p99 and max for each interval."""
    out: dict[str, Series] = {}
    for row in result["timeline"]:
        for rpc, r in row["rpcs"].items():
            series = out.setdefault(rpc, {"p50": [], "p99": [], "max": []})
            for name in ("p50", "p99", "max"):
                series[name].append((float(row["t_s"]), r[f"{name}_us"] / 1000))
    return out


def distribution_series(result: Mapping[str, Any]) -> dict[str, list[tuple[float, float]]]:
    """Per RPC, (percentile, ms) points along its measured latency distribution."""
    out: dict[str, list[tuple[float, float]]] = {}
    for rpc, r in result["rpcs"].items():
        hist = histo.decode(r["histogram"])
        out[rpc] = [(pct, value / 1000) for pct, value in histo.distribution(hist)]
    return out


def _save(plt: Any, fig: Any, ax: Any, *, xlabel: str, title: str, path: pathlib.Path) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel("latency, ms")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:  # an empty chart (no intervals yet) has no legend
        ax.legend(fontsize="small")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_run(result: Mapping[str, Any], prefix: pathlib.Path) -> list[pathlib.Path]:
    """Write <prefix>-timeline.png and <prefix>-distribution.png; [] without matplotlib."""
    plt = matplotlib_pyplot()
    if plt is None:
        return []
    timeline = prefix.with_name(prefix.name + "-timeline.png")
    fig, ax = plt.subplots(figsize=(10, 5))
    for rpc, series in timeline_series(result).items():
        for name, style in (("p50", "-"), ("p99", "--"), ("max", ":")):
            points = series[name]
            ax.plot([t for t, _ in points], [v for _, v in points], style, label=f"{rpc} {name}")
    warmup = [row["t_s"] for row in result["timeline"] if row["phase"] == "warm-up"]
    if warmup:
        ax.axvspan(0, max(warmup), color="0.9", label="warm-up")
    _save(
        plt,
        fig,
        ax,
        xlabel="seconds since start",
        title="Latency over time (per interval)",
        path=timeline,
    )
    distribution = prefix.with_name(prefix.name + "-distribution.png")
    fig, ax = plt.subplots(figsize=(10, 5))
    for rpc, points in distribution_series(result).items():
        # x = 1 / (1 - percentile): the tail spreads out, p99 and p99.9 get room of their own.
        xs = [1 / (1 - min(pct, 99.999) / 100) for pct, _ in points]
        ax.plot(xs, [v for _, v in points], label=rpc)
    ax.set_xscale("log")
    ax.set_xticks([1, 2, 10, 100, 1000, 10000], ["0%", "50%", "90%", "99%", "99.9%", "99.99%"])
    _save(
        plt,
        fig,
        ax,
        xlabel="percentile",
        title="Latency distribution (measured part)",
        path=distribution,
    )
    return [timeline, distribution]
