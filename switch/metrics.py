"""Prometheus metrics of the switch, in a registry of their own, served over HTTP if configured.

The figures counted on every payment (requests, their latency and overhead, channel calls and
answers) are plain numbers the event loop's thread adds to, and a collector turns them into
metric families when /metrics is read. prometheus_client's own metrics take a lock and go
through four or five Python calls per update: five updates a payment were about 4% of the
switch's instructions per payment (callgrind, 2026-11-27), against under 1% this way.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from switch.model import Operation, Outcome

log = logging.getLogger("payswitch.metrics")

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


T = TypeVar("T")

_STREAM_RPCS = {
    k: f"StreamPayments/{k.title()}" for k in ("authorize", "capture", "void", "refund")
}


class LoopCounter:
    """One counter, added to on the event loop's thread only: no lock."""

    __slots__ = ("count", "created")

    def __init__(self) -> None:
        self.count = 0
        self.created = time.time()  # exported as _created, as prometheus_client does


class LoopHistogram:
    """One histogram's counts, added to on the event loop's thread only: no lock. A reader on
    another thread (the /metrics server) copies the list, one step under the GIL."""

    __slots__ = ("counts", "created", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_LATENCY_BUCKETS) + 1)  # the last one: above every bound
        self.total = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        # The first bucket whose bound is >= value, as Prometheus's `le` means.
        self.counts[bisect_left(_LATENCY_BUCKETS, value)] += 1
        self.total += value


# The `le` labels as prometheus_client writes them, so dashboards see the same series.
_BOUNDS = [floatToGoString(b) for b in _LATENCY_BUCKETS] + ["+Inf"]  # type: ignore[no-untyped-call]


def _histogram(
    name: str, doc: str, labels: list[str], children: dict[Any, LoopHistogram]
) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for key, h in _snapshot(children):
        counts, running, buckets = list(h.counts), 0, []
        for bound, n in zip(_BOUNDS, counts, strict=True):
            running += n
            buckets.append((bound, running))
        values = list(key) if isinstance(key, tuple) else [key]
        family.add_metric(values, buckets, h.total)
        # HistogramMetricFamily takes no creation time; prometheus_client's Histogram writes one.
        labelled = dict(zip(labels, values, strict=True))
        family.samples.append(Sample(f"{name}_created", labelled, h.created))
    return family


def _snapshot(children: dict[Any, T]) -> list[tuple[Any, T]]:
    """The children as they are now. dict.copy() copies in one step under the GIL, where
    iterating the live dict could meet a key the loop's thread adds meanwhile (a collection
    can run Python code, gc.callbacks, between two items and hand the GIL over)."""
    return list(children.copy().items())


class LoopCounts:
    """The per-payment figures, as plain numbers; a collector in the metrics registry."""

    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, str], LoopCounter] = defaultdict(LoopCounter)
        self.latency: defaultdict[str, LoopHistogram] = defaultdict(LoopHistogram)
        self.overhead: defaultdict[str, LoopHistogram] = defaultdict(LoopHistogram)
        self.channel_latency: defaultdict[str, LoopHistogram] = defaultdict(LoopHistogram)
        # Keyed by the enums' names: an enum member hashes through Python-level code.
        self.channel_outcomes: defaultdict[tuple[str, str, str], LoopCounter] = defaultdict(
            LoopCounter
        )

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "payswitch_requests",
            "Gateway requests by RPC and gRPC status code.",
            labels=["rpc", "code"],
        )
        for (rpc, code), c in _snapshot(self.requests):
            requests.add_metric([rpc, code], c.count, created=c.created)
        yield requests
        yield _histogram(
            "payswitch_request_seconds", "Gateway request latency by RPC.", ["rpc"], self.latency
        )
        yield _histogram(
            "payswitch_overhead_seconds",
            "The switch's own time per request, channel calls excluded.",
            ["rpc"],
            self.overhead,
        )
        outcomes = CounterMetricFamily(
            "payswitch_channel_outcomes",
            "Channel answers by channel, operation and outcome.",
            labels=["channel", "operation", "outcome"],
        )
        for (channel, op, outcome), c in _snapshot(self.channel_outcomes):
            outcomes.add_metric([channel, op, outcome], c.count, created=c.created)
        yield outcomes
        yield _histogram(
            "payswitch_channel_seconds",
            "Channel call latency by channel.",
            ["channel"],
            self.channel_latency,
        )

    def describe(self) -> Iterator[Metric]:
        # The names, for the registry's check that no two collectors export the same one.
        return self.collect()


class Metrics:
    """Every metric the switch exports; one instance, passed to whoever counts."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._counts = LoopCounts()
        r.register(self._counts)
        self.replays = Counter(
            "payswitch_idempotent_replays",
            "Requests answered from a stored idempotent response.",
            ["rpc"],
            registry=r,
        )
        self.rate_limited = Counter(
            "payswitch_rate_limited",
            "Requests refused by a rate limit, by scope.",
            ["scope"],
            registry=r,
        )
        self.pending = Gauge(
            "payswitch_pending_payments", "Payments whose outcome is not known yet.", registry=r
        )
        self.resolutions = Counter(
            "payswitch_resolutions",
            "Pending outcomes resolved, by source and outcome.",
            ["source", "outcome"],
            registry=r,
        )
        self.breaker_transitions = Counter(
            "payswitch_breaker_transitions",
            "Circuit breaker transitions by channel, endpoint and the state entered.",
            ["channel", "endpoint", "state"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "payswitch_breaker_state",
            "Circuit breaker state per endpoint: 0 closed, 1 half-open, 2 open.",
            ["channel", "endpoint"],
            registry=r,
        )
        self.cascades = Counter(
            "payswitch_cascades",
            "Authorizations sent on after a retryable decline, by the declining channel.",
            ["channel"],
            registry=r,
        )
        self.risk_stopped = Counter(
            "payswitch_risk_stopped",
            "Authorizations the risk rules rejected or held for review, by decision and rule.",
            ["decision", "rule"],
            registry=r,
        )
        self.store_errors = Counter(
            "payswitch_store_unavailable",
            "Requests refused because Redis was unreachable.",
            registry=r,
        )
        self.gc_pauses = Histogram(
            "payswitch_gc_pause_seconds",
            "Python garbage collections by generation: how long each one stopped the switch.",
            ["generation"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.loop_lag = Histogram(
            "payswitch_event_loop_lag_seconds",
            "How late the event loop ran a timer set every 50 ms: a stall here delays every "
            "payment in the switch at once.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def request_done(self, rpc: str, code: str, elapsed_s: float, overhead_s: float) -> None:
        """Count one finished Gateway request (on the event loop's thread: every request)."""
        c = self._counts
        c.requests[rpc, code].count += 1
        c.latency[rpc].observe(elapsed_s)
        c.overhead[rpc].observe(overhead_s)

    def count_request(self, rpc: str, code: str) -> None:
        """Count one finished Gateway request whose latency is not measured (a watch)."""
        self._counts.requests[rpc, code].count += 1

    def stream_request_done(self, kind: str, code: str, elapsed_s: float) -> None:
        """Count one finished request of a payments stream."""
        rpc = _STREAM_RPCS.get(kind) or f"StreamPayments/{kind.title()}"
        c = self._counts
        c.requests[rpc, code].count += 1
        c.latency[rpc].observe(elapsed_s)

    def channel_call_done(self, channel: str, elapsed_s: float) -> None:
        """Time one call to a channel, answered or not."""
        self._counts.channel_latency[channel].observe(elapsed_s)

    def channel_answered(self, channel: str, op: Operation, outcome: Outcome) -> None:
        """Count one answer of a channel."""
        self._counts.channel_outcomes[channel, op._name_, outcome._name_].count += 1

    def breaker_moved(self, channel: str, endpoint: str, state: str, value: int) -> None:
        self.breaker_transitions.labels(channel, endpoint, state).inc()
        self.breaker_state.labels(channel, endpoint).set(value)

    def serve(self, address: str) -> None:
        """Serve /metrics on host:port in a background thread."""
        host, _, port = address.rpartition(":")
        start_http_server(int(port), addr=host.strip("[]") or "0.0.0.0", registry=self.registry)


class GcWatch:
    """Times every garbage collection into payswitch_gc_pause_seconds (a collection stops the
    whole switch), and logs one that takes `warn_s` or more; `install()` / `remove()`."""

    def __init__(self, metrics: Metrics, *, warn_s: float = 0.05) -> None:
        self._by_generation = [metrics.gc_pauses.labels(str(g)) for g in range(3)]
        self._warn_s = warn_s
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        generation = info.get("generation", 2)
        self._by_generation[generation].observe(took)
        if took >= self._warn_s:
            log.warning(
                "a garbage collection paused the switch",
                extra={
                    "generation": generation,
                    "pause_ms": round(took * 1000, 1),
                    "collected": info.get("collected", 0),
                },
            )

    def install(self) -> None:
        gc.callbacks.append(self)

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


class LoopLagWatch:
    """Times how late the event loop runs a timer set every `every_s` into
    payswitch_event_loop_lag_seconds, and logs a lag of `warn_s` or more with the main thread's
    CPU time over it: near the lag, a callback held the loop; near zero, the process was not
    running (a blocking call, or the machine gave the CPU to something else).
    `start(loop)` / `stop()`."""

    def __init__(self, metrics: Metrics, *, every_s: float = 0.05, warn_s: float = 0.05) -> None:
        self._lag = metrics.loop_lag
        self._every_s = every_s
        self._warn_s = warn_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._cpu = 0.0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._arm(loop.time())

    def _arm(self, now: float) -> None:
        assert self._loop is not None
        self._due = now + self._every_s
        self._cpu = time.thread_time()
        self._handle = self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        lag = max(0.0, now - self._due)
        self._lag.observe(lag)
        if lag >= self._warn_s:
            log.warning(
                "the event loop ran late",
                extra={
                    "lag_ms": round(lag * 1000, 1),
                    "cpu_ms": round((time.thread_time() - self._cpu) * 1000, 1),
                    "window_ms": round((lag + self._every_s) * 1000, 1),
                },
            )
        self._arm(now)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
