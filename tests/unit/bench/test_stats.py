"""Merging the per-process figures: counts add up, expected refusals are not errors."""

from __future__ import annotations

from bench import histo, stats
from tests.unit.bench.conftest import MakeRun


def test_processes_merge_into_one_figure(run_of: MakeRun) -> None:
    result = run_of(latencies_us=[1000, 2000, 3000, 4000], processes=3, duration_s=2.0)
    auth = result["rpcs"]["Authorize"]
    assert auth["calls"] == 12
    assert auth["latency_us"]["count"] == 12
    assert auth["rate"] == 6.0
    assert auth["codes"] == {"OK": 12}
    assert auth["statuses"] == {"CAPTURED": 12}
    assert result["rate"] == 6.0
    assert result["operations"]["Authorize/authorize"]["calls"] == 12


def test_overhead_kept_only_when_the_server_sent_it(run_of: MakeRun) -> None:
    with_trailer = run_of(latencies_us=[5000] * 10, overhead_us=250)
    without = run_of(latencies_us=[5000] * 10)
    assert with_trailer["rpcs"]["Authorize"]["overhead_us"]["p99"] == 250
    assert without["rpcs"]["Authorize"]["overhead_us"] is None


def test_a_refused_bad_request_is_expected_anything_else_is_an_error(run_of: MakeRun) -> None:
    refused = run_of(latencies_us=[100] * 5, op="bad", code="INVALID_ARGUMENT")
    assert refused["errors"] == 0
    accepted_bad = run_of(latencies_us=[100] * 5, op="bad", code="OK")
    assert accepted_bad["errors"] == 5
    failed = run_of(latencies_us=[100] * 4, code="UNAVAILABLE")
    assert failed["errors"] == 4
    assert failed["error_ratio"] == 1.0


def test_errors_are_counted_apart_from_the_rate_and_latency_of_the_calls_that_went_through(
    run_of: MakeRun,
) -> None:
    # In 1 s, 10 payments of 5 ms each, and 30 calls refused at once (a target that fails fast).
    result = run_of(latencies_us=[5000] * 10, unavailable_us=[20] * 30, overhead_us=300)
    auth = result["rpcs"]["Authorize"]
    assert (auth["calls"], auth["errors"], result["error_ratio"]) == (40, 30, 0.75)
    # The refusals neither raise the rate nor pull the latency of the payments down.
    assert auth["rate"] == result["rate"] == 10.0
    assert result["operations"]["Authorize/authorize"]["rate"] == 10.0
    assert auth["latency_us"]["count"] == auth["overhead_us"]["count"] == 10
    assert 4990 <= auth["latency_us"]["p50"] <= 5010
    # They have a latency of their own.
    assert auth["error_latency_us"]["count"] == 30
    assert auth["error_latency_us"]["p99"] == 20
    assert run_of(latencies_us=[5000] * 10)["rpcs"]["Authorize"]["error_latency_us"] is None


def test_unexpected_counts_by_operation() -> None:
    assert stats.unexpected("bad", {"INVALID_ARGUMENT": 3, "OK": 1}) == 1
    assert stats.unexpected("authorize", {"OK": 3, "DEADLINE_EXCEEDED": 2}) == 2


def test_an_answer_ok_whose_payment_did_not_go_through_is_unexpected() -> None:
    went_through = {"CAPTURED": 7}
    not_through = {"CAPTURED": 7, "PENDING": 2, "FAILED": 1}
    assert stats.unexpected("authorize", {"OK": 7}, "Authorize", went_through) == 0
    assert stats.unexpected("authorize", {"OK": 10}, "Authorize", not_through) == 3
    # A decline is meant to decline; a manual authorization to stop at AUTHORIZED.
    assert stats.unexpected("decline", {"OK": 4}, "Authorize", {"DECLINED": 4}) == 0
    assert stats.unexpected("decline", {"OK": 4}, "Authorize", {"CAPTURED": 4}) == 4
    assert stats.unexpected("authorize_capture", {"OK": 2}, "Authorize", {"AUTHORIZED": 2}) == 0
    assert stats.unexpected("authorize_capture", {"OK": 2}, "Capture", {"CAPTURED": 2}) == 0
    assert stats.unexpected("refund", {"OK": 2}, "Refund", {"PARTIALLY_REFUNDED": 2}) == 2
    # The live line judges each call the same way; no status is judged by its code alone.
    assert not stats.expected("Authorize", "authorize", "OK", "PENDING")
    assert stats.expected("Authorize", "authorize", "OK", "")
    assert stats.expected("Authorize", "bad", "INVALID_ARGUMENT", "")


def test_interval_stats_are_taken_and_reset() -> None:
    interval = stats.IntervalStats()
    interval.add(100, True)
    interval.add(200, False)
    calls, errors, encoded = interval.take()
    assert (calls, errors) == (2, 1)
    # The timeline's latency is of the calls with the expected outcome, like the report's.
    assert histo.decode(encoded).get_max_value() == 100
    assert interval.take()[:2] == (0, 0)


def test_an_open_loop_the_target_fell_behind_reports_what_it_achieved(run_of: MakeRun) -> None:
    # 200/s offered for 2 s; the target answered 50/s, so the 400 calls took 8 s.
    behind = run_of(latencies_us=[3_000] * 400, duration_s=2.0, open_rate=200.0, last_end_s=8.0)
    assert behind["rate"] == 50.0, "not the offered rate"
    assert behind["offered_rate"] == 200.0
    assert behind["measure_s"] == 8.0
    assert any("fell behind the offered rate" in w for w in behind["warnings"])
    # A target that kept up: its last call ends a latency after the nominal end.
    kept_up = run_of(latencies_us=[3_000] * 400, duration_s=2.0, open_rate=200.0, last_end_s=2.003)
    assert 199.0 < kept_up["rate"] <= 200.0
    assert not kept_up["warnings"]
