"""Process-wide tuning shared by the switch and adapter workers: the garbage collector.

CPython collects its young generation after 700 net new container objects. A server with
thousands of objects in flight (payments waiting on Redis or a channel) crosses that on every
swing of its working set, finds them alive and moves them on to the older generations, whose
collections walk them again; full collections also walk everything startup built (modules,
protobuf descriptors, gRPC's objects). Measured in the switch under StreamPaymentBatches load
(2026-11-26): 1.37 s of collections for ~55,000 payments (27 us per payment, 14% of its main
thread), 18 full collections of ~28 ms each.

`tune_gc` freezes what startup built (full collections then take ~2.5 ms) and raises the young
threshold to 10,000, above the swings: collections run when garbage cycles have built up
(grpc.aio leaves 5 objects in a cycle per unary call, in its method lookup). The trade is the
size of a young collection: ~3 ms at 10,000 against ~0.2 ms at 700, every ~2,000 unary calls.
Measured 2026-11-26, payswitch up, per 150,000 payments of batch and unary load: 0.19 s of
collections at 10,000, 1.8 s at 2,000, 2.2 s at 700 (all with the freeze); the switch's p99
overhead at 850 unary calls/s was 1.5 ms with 10,000 and with 700.
PAYSWITCH_GC_YOUNG_THRESHOLD in the environment sets another threshold (700 for the
smallest pauses).

`IdleCollector` moves most of those collections out of the requests: a server tells it when
each request starts and ends, and when nothing is in flight and 700 objects have built up it
collects the young generation then (~0.2 ms), between requests. At 900 unary calls/s
(2026-11-26) that replaced ~12 automatic collections of ~2.8 ms per 25 s, each landing inside the
payments in flight, with ~180 of ~0.2 ms at idle moments. The raised threshold stays the safety
net for a server that is never idle. PAYSWITCH_GC_IDLE_AFTER sets the 700 (0 turns it off).
"""

from __future__ import annotations

import asyncio
import gc
import os

# Young collections after this many net new container objects instead of 700 (see above).
GC_YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Call once startup is done: collect, freeze what survives (never garbage; no later
    collection walks it) and raise the young generation's threshold (GC_YOUNG_THRESHOLD, or
    the environment's PAYSWITCH_GC_YOUNG_THRESHOLD).

    The catch: a frozen object that later becomes part of unreachable cycle is never freed. What
    startup builds lives as long as the process, so that is the right trade for a server."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    young = _whole("PAYSWITCH_GC_YOUNG_THRESHOLD", GC_YOUNG_THRESHOLD)
    gc.set_threshold(young, older, oldest)


# An idle moment collects the young generation once this many net new objects have built up.
GC_IDLE_AFTER = 700


class IdleCollector:
    """Collects garbage when a server has no request in flight, so the pause falls between
    requests rather than inside them. The server calls `begin()` as each request starts and
    `end()` as it ends. When the last one ends with GC_IDLE_AFTER (or the environment's
    PAYSWITCH_GC_IDLE_AFTER; 0 = never) net new objects built up, the young generation is
    collected at the next turn of the loop (the middle one too, when its own count is due),
    unless a request has started by then; the middle and oldest generations too when their
    counts are due, as the automatic collector would."""

    __slots__ = ("_after", "_inflight", "_loop", "_scheduled")

    def __init__(self, after: int | None = None) -> None:
        if after is None:
            after = _whole("PAYSWITCH_GC_IDLE_AFTER", GC_IDLE_AFTER)
        self._after = after
        self._inflight = 0
        self._scheduled = False
        # Kept: asyncio.get_running_loop() is a getpid() system call per use on Python 3.11.
        self._loop: asyncio.AbstractEventLoop | None = None

    def begin(self) -> None:
        self._inflight += 1

    def end(self) -> None:
        self._inflight -= 1
        if (
            self._inflight == 0
            and self._after
            and not self._scheduled
            and gc.get_count()[0] >= self._after
        ):
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._scheduled = True
            self._loop.call_soon(self._collect)

    def _collect(self) -> None:
        self._scheduled = False
        if self._inflight:
            return
        counts = gc.get_count()
        if counts[0] < self._after:
            return
        # As the automatic collector picks: the oldest generation whose count is due. Idle
        # collections keep the young count under the raised threshold, so the automatic
        # collector would otherwise never reach the older generations.
        thresholds = gc.get_threshold()
        generation = 2 if counts[2] >= thresholds[2] else 1 if counts[1] >= thresholds[1] else 0
        gc.collect(generation)


def _whole(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    if not raw.isdigit():
        raise ValueError(f"{name} must be a whole number of objects, 0 or more: got {raw!r}")
    return int(raw)
