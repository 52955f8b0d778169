"""The per-payment metrics, counted as plain numbers, read as the Prometheus series they were."""

from __future__ import annotations

import time

from prometheus_client import generate_latest

from switch.metrics import Metrics
from switch.model import Operation, Outcome


def _series(metrics: Metrics) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode()
    pairs = (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {name: float(value) for name, value in pairs}


def test_requests_latency_and_overhead_are_prometheus_counters_and_histograms() -> None:
    started = time.time()
    metrics = Metrics()
    metrics.request_done("Authorize", "OK", 0.0015, 0.0004)
    metrics.request_done("Authorize", "OK", 0.002, 0.0005)  # on a bound: counted at or below it
    metrics.request_done("Authorize", "OK", 30.0, 0.001)  # above every bound
    metrics.request_done("Authorize", "INVALID_ARGUMENT", 0.0001, 0.0001)
    metrics.count_request("WatchPayment", "OK")
    s = _series(metrics)
    assert s['payswitch_requests_total{code="OK",rpc="Authorize"}'] == 3
    assert s['payswitch_requests_total{code="INVALID_ARGUMENT",rpc="Authorize"}'] == 1
    assert s['payswitch_requests_total{code="OK",rpc="WatchPayment"}'] == 1
    bucket = 'payswitch_request_seconds_bucket{le="%s",rpc="Authorize"}'
    assert s[bucket % "0.0005"] == 1  # cumulative, as Prometheus reads buckets
    assert s[bucket % "0.001"] == 1
    assert s[bucket % "0.002"] == 3
    assert s[bucket % "10.0"] == 3
    assert s[bucket % "+Inf"] == 4
    assert s['payswitch_request_seconds_count{rpc="Authorize"}'] == 4
    assert abs(s['payswitch_request_seconds_sum{rpc="Authorize"}'] - 30.0036) < 1e-9
    assert s['payswitch_overhead_seconds_bucket{le="0.0005",rpc="Authorize"}'] == 3
    # Each series also has its creation time, as prometheus_client's own metrics write it.
    for created in (
        'payswitch_requests_created{code="OK",rpc="Authorize"}',
        'payswitch_requests_created{code="OK",rpc="WatchPayment"}',
        'payswitch_request_seconds_created{rpc="Authorize"}',
        'payswitch_overhead_seconds_created{rpc="Authorize"}',
    ):
        assert started <= s[created] <= time.time(), created


def test_streams_and_channels_are_counted_under_their_own_labels() -> None:
    metrics = Metrics()
    metrics.stream_request_done("capture", "OK", 0.003)
    metrics.stream_request_done("none", "INVALID_ARGUMENT", 0.0002)
    metrics.channel_call_done("sandbox", 0.004)
    metrics.channel_answered("sandbox", Operation.AUTHORIZE, Outcome.APPROVED)
    metrics.channel_answered("sandbox", Operation.AUTHORIZE, Outcome.APPROVED)
    s = _series(metrics)
    assert s['payswitch_requests_total{code="OK",rpc="StreamPayments/Capture"}'] == 1
    assert s['payswitch_requests_total{code="INVALID_ARGUMENT",rpc="StreamPayments/None"}'] == 1
    assert s['payswitch_channel_seconds_count{channel="sandbox"}'] == 1
    assert s['payswitch_channel_seconds_bucket{channel="sandbox",le="0.003"}'] == 0
    assert s['payswitch_channel_seconds_bucket{channel="sandbox",le="0.005"}'] == 1
    outcomes = 'payswitch_channel_outcomes_total{channel="sandbox",operation="AUTHORIZE",%s}'
    assert s[outcomes % 'outcome="APPROVED"'] == 2
    created = 'payswitch_channel_outcomes_created{channel="sandbox",operation="AUTHORIZE",%s}'
    assert s[created % 'outcome="APPROVED"'] > 0
    assert s['payswitch_channel_seconds_created{channel="sandbox"}'] > 0
