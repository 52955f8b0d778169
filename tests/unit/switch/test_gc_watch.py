"""Garbage collections are timed into the metrics, and a long one is logged."""

from __future__ import annotations

import gc
import logging

import pytest

from switch.metrics import GcWatch, Metrics


def _count(metrics: Metrics, generation: str) -> float:
    value = metrics.registry.get_sample_value(
        "payswitch_gc_pause_seconds_count", {"generation": generation}
    )
    return value or 0.0


def test_every_collection_is_timed_by_generation() -> None:
    metrics = Metrics()
    watch = GcWatch(metrics)
    watch.install()
    try:
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
    finally:
        watch.remove()
    assert _count(metrics, "0") >= 1
    counted = _count(metrics, "2")
    assert counted >= 2
    gc.collect(2)  # removed: no longer counted
    assert _count(metrics, "2") == counted


def test_a_long_pause_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    watch = GcWatch(metrics, warn_s=0.0)
    watch.install()
    try:
        with caplog.at_level(logging.WARNING, logger="payswitch.metrics"):
            gc.collect(2)
    finally:
        watch.remove()
    pauses = [
        r for r in caplog.records if r.getMessage() == "a garbage collection paused the switch"
    ]
    assert pauses and pauses[-1].generation == 2  # type: ignore[attr-defined]
