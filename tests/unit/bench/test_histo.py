"""HDR histograms: encoded across processes and merged without losing a value."""

from __future__ import annotations

from bench import histo


def test_merge_of_encoded_parts_equals_one_histogram_of_everything() -> None:
    parts = [histo.new_histogram() for _ in range(3)]
    whole = histo.new_histogram()
    for i in range(1, 3001):
        histo.record_us(parts[i % 3], i * 7)
        histo.record_us(whole, i * 7)
    merged = histo.merge(histo.encode(p) for p in parts)
    assert histo.summarize(merged) == histo.summarize(whole)
    assert merged.get_total_count() == 3000


def test_percentiles_are_within_the_histograms_precision() -> None:
    h = histo.new_histogram()
    for v in range(1, 10_001):
        histo.record_us(h, v)
    s = histo.summarize(h)
    assert abs(s["p50"] - 5000) <= 5
    assert abs(s["p99"] - 9900) <= 10
    assert abs(s["p99_9"] - 9990) <= 10
    assert abs(s["max"] - 10_000) <= 10
    assert s["min"] == 1


def test_values_outside_the_range_are_clamped_not_lost() -> None:
    h = histo.new_histogram()
    histo.record_us(h, 0)
    histo.record_us(h, histo.HIGHEST_US * 10)
    assert h.get_total_count() == 2
    assert histo.summarize(h)["min"] == histo.LOWEST_US


def test_empty_histograms_summarize_to_zeros_and_merge_skips_blanks() -> None:
    assert histo.summarize(histo.new_histogram())["count"] == 0
    assert histo.merge(["", ""]).get_total_count() == 0
    assert histo.distribution(histo.new_histogram()) == []


def test_distribution_rises_to_the_maximum() -> None:
    h = histo.new_histogram()
    for v in (100, 200, 300, 5000):
        histo.record_us(h, v)
    points = histo.distribution(h)
    values = [v for _, v in points]
    assert values == sorted(values)
    assert points[-1][0] == 100.0
    assert abs(values[-1] - 5000) <= 5
