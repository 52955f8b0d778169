"""The event loop's lateness is measured, and a stall is logged with the CPU used over it."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from switch.metrics import LoopLagWatch, Metrics


def _count(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("payswitch_event_loop_lag_seconds_count") or 0.0


async def test_a_blocked_loop_is_measured_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    watch = LoopLagWatch(metrics, every_s=0.01, warn_s=0.05)
    watch.start(asyncio.get_running_loop())
    try:
        await asyncio.sleep(0.05)
        assert _count(metrics) >= 2  # timed while the loop was free
        with caplog.at_level(logging.WARNING, logger="payswitch"):
            time.sleep(0.15)  # noqa: ASYNC251 - the blocking call whose stall is measured
            await asyncio.sleep(0.03)
    finally:
        watch.stop()
    stalls = [r for r in caplog.records if r.getMessage() == "the event loop ran late"]
    assert len(stalls) == 1
    assert stalls[0].lag_ms >= 100  # type: ignore[attr-defined]
    assert stalls[0].cpu_ms < stalls[0].lag_ms  # type: ignore[attr-defined]  # asleep, not busy
    slow = metrics.registry.get_sample_value(
        "payswitch_event_loop_lag_seconds_bucket", {"le": "0.1"}
    )
    assert _count(metrics) > (slow or 0.0)  # the stall is in a bucket above 100 ms


async def test_stopped_watch_measures_nothing_more() -> None:
    metrics = Metrics()
    watch = LoopLagWatch(metrics, every_s=0.01)
    watch.start(asyncio.get_running_loop())
    await asyncio.sleep(0.03)
    watch.stop()
    counted = _count(metrics)
    await asyncio.sleep(0.03)
    assert _count(metrics) == counted
