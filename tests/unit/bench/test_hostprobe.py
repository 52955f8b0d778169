"""The host probe: its figures, and what a report and compare make of them (no timing asserted)."""

from __future__ import annotations

import pathlib

import pytest

from bench import cli, compare, hostprobe, report


def test_probe_measures_python_work_and_process_round_trips_at_each_gap() -> None:
    figures = hostprobe.probe(gaps_ms=(0, 2), trips=5)
    assert set(figures) == {
        "python_loop_ms",
        "work_0ms_us",
        "work_2ms_us",
        "hop_0ms_us",
        "hop_2ms_us",
    }
    assert all(v > 0 for v in figures.values())
    line = hostprobe.render(figures)
    assert line.startswith("host: Python loop ")
    assert "us when 0 / 2 ms apart" in line and "a process round trip" in line


def test_a_child_that_never_answers_does_not_hold_the_run_up(tmp_path: pathlib.Path) -> None:
    mute = tmp_path / "mute"
    mute.write_text("#!/bin/sh\nexec sleep 30\n")
    mute.chmod(0o755)
    figures = hostprobe.probe(gaps_ms=(0,), trips=3, python=str(mute))
    assert set(figures) == {"python_loop_ms", "work_0ms_us"}


def test_without_a_child_process_the_round_trips_are_left_out() -> None:
    figures = hostprobe.probe(gaps_ms=(0,), trips=3, python="/nonexistent/python")
    assert set(figures) == {"python_loop_ms", "work_0ms_us"}
    assert "round trip" not in hostprobe.render(figures)


def _report_with_host(tmp_path: pathlib.Path, name: str, hop_us: float) -> str:
    rep = report.new_report("run", ["run"], {})
    rep["figures"] = report.spread([{"rate": 1000.0}])
    rep["machine"]["probe"] = {"python_loop_ms": 60.0, "hop_10ms_us": hop_us}
    report.add_host_figures(rep)
    return str(report.write(rep, tmp_path / f"{name}.json"))


def test_reports_carry_host_figures_and_compare_calls_a_slower_host_not_a_worse_switch(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _report_with_host(tmp_path, "a", 80.0)
    b = _report_with_host(tmp_path, "b", 700.0)
    loaded = report.load(b)
    assert loaded["figures"]["host.hop_10ms_us"]["value"] == 700.0
    assert loaded["figures"]["host.python_loop_ms"]["value"] == 60.0

    rows = {r.name: r.verdict for r in compare.compare(report.load(a), loaded)}
    assert rows["host.hop_10ms_us"] == "host slower"
    assert rows["host.python_loop_ms"] == "within noise"
    assert rows["rate"] == "within noise"
    faster = {r.name: r.verdict for r in compare.compare(loaded, report.load(a))}
    assert faster["host.hop_10ms_us"] == "host faster"

    # A slower host is said, and does not fail a gate on worse figures.
    assert cli.main(["compare", "--fail-on-worse", a, b]) == 0
    out = capsys.readouterr().out
    assert "0 better, 0 worse" in out
    assert "B's host differed from A's (host.hop_10ms_us slower)" in out
    assert "700 us" in out  # the probe's microseconds shown as such, not as 0.70 ms


def test_the_floor_flag_leaves_the_host_figures_their_own_floors(tmp_path: pathlib.Path) -> None:
    a = report.load(_report_with_host(tmp_path, "a", 80.0))
    b = report.load(_report_with_host(tmp_path, "b", 120.0))
    rows = {r.name: r.verdict for r in compare.compare(a, b, floor=0.05)}
    assert rows["host.hop_10ms_us"] == "within noise"  # +50%: one probe's own spread
