"""The JSON report: its frame, its figures, the spread over repeats, the calibration share."""

from __future__ import annotations

import pathlib

import pytest

from bench import report, table
from tests.unit.bench.conftest import MakeRun

CALIBRATION = {
    "h2load_rps": 6000.0,
    "harness_rps": 4500.0,
    "share": 0.75,
    "required_share": 0.65,
    "harness_is_bottleneck": False,
    "rounds": [{"h2load_rps": 6000.0, "harness_rps": 4500.0, "share": 0.75}],
}


def test_report_frame_names_machine_software_commit_and_command() -> None:
    rep = report.new_report("run", ["run", "--target", "x:1"], {"seed": 1})
    assert rep["schema"] == report.SCHEMA
    assert rep["command"] == "payswitch bench run --target x:1"
    assert rep["machine"]["cpu_count"]
    assert rep["software"]["python"]
    assert "grpcio" in rep["software"]
    assert "grpc_experiments" in rep["software"]  # they change gRPC's cost per call
    assert set(rep["git"]) == {"commit", "dirty"}


def test_figures_of_a_run(run_of: MakeRun) -> None:
    figures = report.run_figures(run_of(latencies_us=[1000] * 9 + [9000], overhead_us=300))
    assert figures["rate"] == 10.0
    assert figures["Authorize.p50_us"] == pytest.approx(1000, rel=0.01)
    assert figures["Authorize.max_us"] == pytest.approx(9000, rel=0.01)
    assert figures["Authorize.overhead_p99_us"] == pytest.approx(300, rel=0.01)
    # A run whose calls all failed has a rate of 0 and no latency to compare, not one of 0 us.
    refused = report.run_figures(run_of(latencies_us=[], unavailable_us=[30] * 5))
    assert refused["Authorize.rate"] == 0.0 and refused["error_ratio"] == 1.0
    assert "Authorize.p99_us" not in refused


def test_repeats_give_median_and_noise(run_of: MakeRun) -> None:
    runs = [run_of(latencies_us=[1000] * n) for n in (10, 12, 11)]
    rep = report.new_report("run", ["run"], {})
    report.add_runs(rep, runs, CALIBRATION)
    rate = rep["figures"]["rate"]
    assert (rate["value"], rate["min"], rate["max"], rate["runs"]) == (11.0, 10.0, 12.0, 3)
    assert rate["noise"] == pytest.approx(2 / 11, abs=1e-4)
    # A closed loop against a target is set beside the echo ceiling measured in the same run.
    assert rep["figures"]["share_of_echo"]["value"] == pytest.approx(11 / 4500, abs=1e-4)
    assert rep["figures"]["calibration.share"]["value"] == 0.75
    spread = table.render_spread(rep["figures"])
    assert "75.00%" in spread and "18.2%" in spread


def test_write_and_load_round_trip(run_of: MakeRun, tmp_path: pathlib.Path) -> None:
    rep = report.new_report("run", ["run"], {})
    report.add_runs(rep, [run_of(latencies_us=[500])], None)
    path = report.write(rep, tmp_path / "deep" / "r.json")
    assert report.load(path) == rep


def test_load_refuses_other_json(tmp_path: pathlib.Path) -> None:
    other = tmp_path / "x.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="not a payswitch bench report"):
        report.load(other)


def test_tables_show_the_figures(run_of: MakeRun) -> None:
    text = table.render_run(run_of(latencies_us=[2500] * 4, overhead_us=400))
    assert "Authorize" in text and "2.50" in text and "0.40/0.40" in text
    assert "CAPTURED=4" in text
    # The errors' latency has a column of its own, and the table says what each column is of.
    failing = table.render_run(run_of(latencies_us=[2500] * 4, unavailable_us=[30_000] * 2))
    header, _, row = failing.splitlines()[1:4]
    assert "expected/s" in header and header.rstrip().endswith("errors p50/p99 ms")
    assert row.split()[1:3] == ["6", "4.0"]  # calls, and the rate of the 4 that went through
    assert row.split()[-2:] == ["2", "30.02/30.02"]  # 30 ms within the histogram's 0.1%
    # An open loop's lateness: the generator's own, and the waits for a free slot apart.
    late = {"p50": 100, "p99": 400, "max": 900}
    waited = {"p50": 2_000, "p99": 250_000, "max": 300_000}
    open_run = {**run_of(latencies_us=[2500] * 4), "send_lag_us": late, "slot_wait_us": waited}
    text = table.render_run(open_run)
    assert "send lag behind the schedule, the generator's own: p50 0.10 ms, p99 0.40 ms" in text
    assert "waits for a free slot (--max-inflight calls in flight): p50 2.00 ms, p99 250" in text
    refused = table.render_run(run_of(latencies_us=[], unavailable_us=[30_000] * 2))
    assert refused.splitlines()[3].split()[1:8] == ["2", "0.0", "-", "-", "-", "-", "-"]
    assert "calls with the expected outcome only" in failing
    cal = table.render_calibration(CALIBRATION)
    assert "75.0%" in cal and "keeps up" in cal
    assert "median of each" in cal  # the share is not the ratio of the medians beside it
    bottleneck = table.render_calibration({**CALIBRATION, "harness_is_bottleneck": True})
    assert "make it leaner" in bottleneck
    missing = table.render_calibration(
        {
            **CALIBRATION,
            "h2load_rps": None,
            "share": None,
            "note": "h2load is missing",
            "rounds": [{"h2load_rps": None, "harness_rps": 4500.0, "share": None}],
        }
    )
    assert "not measured: h2load is missing" in missing
