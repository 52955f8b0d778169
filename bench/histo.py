"""Latency histograms: HDR histograms in microseconds, encoded to cross processes and merged."""

from __future__ import annotations

from collections.abc import Iterable

from hdrh.histogram import HdrHistogram

# Microseconds from 1 us to 10 minutes at 3 significant figures: a value is kept within 0.1%.
LOWEST_US = 1
HIGHEST_US = 600_000_000
SIGNIFICANT_FIGURES = 3

# The percentiles every report shows, with the name each has in the JSON report.
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99_9", 99.9),
)


def new_histogram() -> HdrHistogram:
    """An empty latency histogram with the harness's range and precision."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


def record_us(hist: HdrHistogram, value_us: int) -> None:
    """Record one value, clamped into the histogram's range so that no sample is lost."""
    if value_us < LOWEST_US:
        value_us = LOWEST_US
    elif value_us > HIGHEST_US:
        value_us = HIGHEST_US
    hist.record_value(value_us)


def encode(hist: HdrHistogram) -> str:
    """The histogram as a compressed base64 text (the standard HdrHistogram log encoding)."""
    return bytes(hist.encode()).decode("ascii")


def decode(text: str) -> HdrHistogram:
    """A histogram back from `encode`'s text."""
    hist: HdrHistogram = HdrHistogram.decode(text.encode("ascii"))
    return hist


def merge(encoded: Iterable[str]) -> HdrHistogram:
    """One histogram holding every value of the encoded ones (from several processes or runs)."""
    total = new_histogram()
    for text in encoded:
        if text:
            total.add(decode(text))
    return total


def summarize(hist: HdrHistogram) -> dict[str, int | float]:
    """Count, mean, percentiles and max of a histogram, in microseconds."""
    count = int(hist.get_total_count())
    figures: dict[str, int | float] = {"count": count}
    if count == 0:
        figures.update({name: 0 for name, _ in PERCENTILES})
        figures.update({"min": 0, "max": 0, "mean": 0.0})
        return figures
    for name, pct in PERCENTILES:
        figures[name] = int(hist.get_value_at_percentile(pct))
    figures["min"] = int(hist.get_min_value())
    figures["max"] = int(hist.get_max_value())
    figures["mean"] = round(float(hist.get_mean_value()), 1)
    return figures


def distribution(hist: HdrHistogram, ticks_per_half: int = 5) -> list[tuple[float, int]]:
    """(percentile, value in us) points along the distribution, for plots."""
    if hist.get_total_count() == 0:
        return []
    points: list[tuple[float, int]] = []
    for item in hist.get_percentile_iterator(ticks_per_half):
        points.append((float(item.percentile_level_iterated_to), int(item.value_iterated_to)))
    return points
