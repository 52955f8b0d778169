"""Comparing reports: changes beyond the noise are called, changes inside it are not."""

from __future__ import annotations

from typing import Any

from bench import compare, report


def fig(value: float, low: float | None = None, high: float | None = None) -> dict[str, Any]:
    low = value if low is None else low
    high = value if high is None else high
    return {
        "value": value,
        "min": low,
        "max": high,
        "runs": 3,
        "noise": (high - low) / value if value else 0.0,
    }


def rep(figures: dict[str, Any], **config: Any) -> dict[str, Any]:
    return {"figures": figures, "config": config, "date": "d", "command": "c", "git": None}


def verdicts(a: dict[str, Any], b: dict[str, Any], **kw: Any) -> dict[str, str]:
    return {row.name: row.verdict for row in compare.compare(a, b, **kw)}


def test_direction_decides_better_or_worse() -> None:
    a = rep({"rate": fig(1000), "Authorize.p99_us": fig(10_000)})
    b = rep({"rate": fig(1500), "Authorize.p99_us": fig(20_000)})
    assert verdicts(a, b) == {"rate": "better", "Authorize.p99_us": "worse"}
    assert verdicts(b, a) == {"rate": "worse", "Authorize.p99_us": "better"}


def test_small_changes_sit_inside_the_stated_floor() -> None:
    a = rep({"rate": fig(1000), "Authorize.p99_us": fig(10_000)})
    b = rep({"rate": fig(1050), "Authorize.p99_us": fig(11_000)})
    rows = compare.compare(a, b)
    assert {r.verdict for r in rows} == {"within noise"}
    assert {r.noise_source for r in rows} == {"stated"}


def test_measured_spread_widens_the_noise() -> None:
    # A's repeats spread 30% apart, so a 20% higher rate in B is not a real change.
    a = rep({"rate": fig(1000, 850, 1150)})
    b = rep({"rate": fig(1200)})
    (row,) = compare.compare(a, b)
    assert row.verdict == "within noise"
    assert row.noise_source == "measured"
    assert row.noise == 0.3


def test_one_floor_for_all_overrides_the_stated_ones() -> None:
    a = rep({"rate": fig(1000)})
    b = rep({"rate": fig(1050)})
    assert verdicts(a, b, floor=0.01) == {"rate": "better"}


def test_one_floor_for_all_does_not_widen_the_error_ratio_band() -> None:
    a = rep({"error_ratio": fig(0.0), "rate": fig(1000)})
    b = rep({"error_ratio": fig(0.04), "rate": fig(1030)})  # 0 -> 4% of calls failing
    # --floor 0.05 is a relative band: not five percentage points of errors.
    assert verdicts(a, b, floor=0.05) == {"error_ratio": "worse", "rate": "within noise"}


def test_the_calibration_measures_the_machine_so_its_changes_are_never_worse() -> None:
    a = rep({"calibration.h2load_rps": fig(4000), "calibration.harness_rps": fig(3600)})
    b = rep({"calibration.h2load_rps": fig(3000), "calibration.harness_rps": fig(4200)})
    assert verdicts(a, b) == {
        "calibration.h2load_rps": "host slower",
        "calibration.harness_rps": "host faster",
    }
    assert verdicts(a, b, floor=0.5) == {
        "calibration.h2load_rps": "host slower",  # --floor is for the target's figures
        "calibration.harness_rps": "host faster",
    }


def test_error_ratio_is_compared_in_percentage_points() -> None:
    a = rep({"error_ratio": fig(0.0)})
    assert verdicts(a, rep({"error_ratio": fig(0.0005)})) == {"error_ratio": "within noise"}
    assert verdicts(a, rep({"error_ratio": fig(0.02)})) == {"error_ratio": "worse"}


def test_an_error_ratio_under_a_prefix_is_compared_in_points_too() -> None:
    a = rep({"then.error_ratio": fig(0.0)})
    b = rep({"then.error_ratio": fig(0.0004)})
    assert verdicts(a, b) == {"then.error_ratio": "within noise"}
    rendered = compare.render(a, b, compare.compare(a, b))
    assert "+0.04 pp" in rendered
    assert "0.04%" in rendered


def test_figures_in_one_report_only_are_named() -> None:
    a = rep({"rate": fig(10), "Capture.rate": fig(5)})
    b = rep({"rate": fig(10), "Refund.rate": fig(5)})
    assert verdicts(a, b) == {
        "rate": "within noise",
        "Capture.rate": "only in A",
        "Refund.rate": "only in B",
    }


def test_render_names_differing_settings_and_counts_verdicts() -> None:
    a = rep({"rate": fig(1000)}, load={"concurrency": 32})
    b = rep({"rate": fig(2000)}, load={"concurrency": 64})
    text = compare.render(a, b, compare.compare(a, b))
    assert "settings differ: load.concurrency" in text
    assert "+100.0%" in text
    assert "1 better, 0 worse" in text


def test_render_names_a_change_of_grpc_settings_or_versions() -> None:
    a = rep({"rate": fig(1000)})
    b = rep({"rate": fig(1000)})
    a["software"] = {"grpcio": "1.85.3", "grpc_experiments": "-event_engine_listener"}
    b["software"] = {"grpcio": "1.85.3", "grpc_experiments": None}
    text = compare.render(a, b, compare.compare(a, b))
    assert "settings differ: software.grpc_experiments" in text
    assert "software.grpcio" not in text


def test_floors_by_kind_of_figure() -> None:
    assert compare.floor_for("Authorize.p99_9_us") == 0.30
    assert compare.floor_for("Authorize.p99_us") == 0.20
    assert compare.floor_for("send_lag_p99_us") == 0.50
    assert compare.floor_for("Authorize.overhead_p50_us") == 0.10
    assert compare.higher_is_better("calibration.h2load_rps")
    assert compare.higher_is_better("share_of_echo")
    assert not compare.higher_is_better("Authorize.max_us")


def test_render_says_which_report_shared_its_machine_with_other_work() -> None:
    def run(other: float) -> dict[str, Any]:
        machine = {"busy_cores": 1.9, "watched_cores": 1.0, "other_cores": other}
        return {"processes": {"switch": {"cpu_us_per_call": 900.0}}, "machine": machine}

    a = rep({"rate": fig(1000)})
    b = rep({"rate": fig(800)})
    a["runs"] = [run(0.02), run(0.04)]
    # B is a step report: its half-capacity runs sit under "then".
    b["then"] = {"runs": [run(0.03), run(0.61)]}
    text = compare.render(a, b, compare.compare(a, b))
    assert "B: processes neither watched nor generators kept up to 0.61 cores busy" in text
    assert "A: processes" not in text
    # Runs that watched nothing count the target itself among the rest: no note then.
    b["then"] = {"runs": [{"processes": {}, "machine": {"other_cores": 1.2}}]}
    assert "B: processes" not in compare.render(a, b, compare.compare(a, b))


def test_a_report_from_before_errors_were_counted_apart_still_compares_and_says_so() -> None:
    old = rep({"rate": fig(1000), "error_ratio": fig(0.02, 0.0, 0.04), "Authorize.p99_us": fig(9)})
    new = {**rep({"rate": fig(900), "error_ratio": fig(0.0)}), "counted": report.COUNTED}
    assert verdicts(old, new)["Authorize.p99_us"] == "only in A"
    text = compare.render(old, new, compare.compare(old, new))
    assert "A was written before errors were counted apart" in text
    assert "error ratio up to 4.00%" in text
    assert "B was written before" not in text
    # An older report without errors counted nothing else in its rates: nothing to say.
    clean = rep({"rate": fig(1000), "error_ratio": fig(0.0)})
    assert "written before" not in compare.render(clean, new, compare.compare(clean, new))


def test_a_report_from_before_slot_waits_were_told_apart_says_its_send_lag_includes_them() -> None:
    old = rep({"rate": fig(1000), "send_lag_p99_us": fig(900_000)})
    new = {**rep({"rate": fig(1000), "send_lag_p99_us": fig(40)}), "counted": report.COUNTED}
    text = compare.render(old, new, compare.compare(old, new))
    assert "A was written before an open loop's waits for a free --max-inflight slot" in text
    assert "B was written before an open loop's" not in text
    # A closed loop has no send lag: nothing to say.
    closed = rep({"rate": fig(1000)})
    assert "free --max-inflight slot" not in compare.render(
        closed, new, compare.compare(closed, new)
    )
