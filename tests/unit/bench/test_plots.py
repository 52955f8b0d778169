"""The plots' data, and PNGs written exactly when matplotlib can be imported."""

from __future__ import annotations

import importlib.util
import pathlib

from bench import plots
from tests.unit.bench.conftest import MakeRun


def test_series_from_the_timeline_and_the_histogram(run_of: MakeRun) -> None:
    result = run_of(latencies_us=[1000, 2000, 3000, 4000])
    result["timeline"] = [
        {
            "t_s": 1.0,
            "phase": "warm-up",
            "rpcs": {
                "Authorize": {
                    "calls": 5,
                    "errors": 0,
                    "p50_us": 900,
                    "p99_us": 1800,
                    "max_us": 2000,
                }
            },
        },
        {
            "t_s": 2.0,
            "phase": "measure",
            "rpcs": {
                "Authorize": {
                    "calls": 4,
                    "errors": 0,
                    "p50_us": 2000,
                    "p99_us": 4000,
                    "max_us": 4000,
                }
            },
        },
    ]
    series = plots.timeline_series(result)
    assert series["Authorize"]["p99"] == [(1.0, 1.8), (2.0, 4.0)]
    distribution = plots.distribution_series(result)["Authorize"]
    assert distribution[-1][0] == 100.0
    assert abs(distribution[-1][1] - 4.0) < 0.01


def test_pngs_only_with_matplotlib(run_of: MakeRun, tmp_path: pathlib.Path) -> None:
    result = run_of(latencies_us=[1000, 2000])
    result["timeline"] = []
    written = plots.plot_run(result, tmp_path / "run")
    if importlib.util.find_spec("matplotlib") is None:
        assert written == []
    else:
        assert [p.name for p in written] == ["run-timeline.png", "run-distribution.png"]
        assert all(p.read_bytes().startswith(b"\x89PNG") for p in written)
