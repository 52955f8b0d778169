"""How fast this host is at the two things a payment's latency is made of here: running Python,
and waking another process that has been idle.

Hosts of the same kind differ by more than a change to the switch does: on 2026-11-26 two 2-vCPU
VMs of one kind ran the echo server at 6,900-7,900 and 3,200-3,600 calls/s, and a Python round
trip to an idle Redis after 10 ms cost 0.4 ms (a claim script) on one and 0.7 ms (a PING) on the
other (bench/README.md, "A slower host"). Every report carries these figures (`machine.probe`,
and `host.*` among the figures), measured before the load starts, so `payswitch bench compare`
can say when two reports came from hosts that differ, instead of crediting the switch with the
difference.

- `python_loop_ms`: 2 million empty steps of a Python `for` loop, best of three: the CPU's speed
  on warm code.
- `hop_<gap>ms_us`: the median round trip of one byte through pipes to a child Python process
  and back, the calls `gap` ms apart: mostly the kernel's wake-up of an idle process.

Gaps of 0 and 10 ms. One probe is one sample of a noisy host (a 1-ms gap varied threefold between
back-to-back probes under load, so it is not taken), hence compare's wide floors for these
figures: it is a change of host by a factor, not by percents, that they are there to show.
- `work_<gap>ms_us`: the median time of a fixed piece of Python (decode and encode a 3 KB JSON
  document), the pieces `gap` ms apart: what running from cold caches costs after a pause, which
  is where a slow host's latency went (the host may run other work on an idle vCPU; on the
  slower host of 2026-11-26 it was 105 us back to back and 278 us 10 ms apart).
"""

from __future__ import annotations

import json
import os
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

LOOP_STEPS = 2_000_000
GAPS_MS = (0, 10)
TRIPS = 60  # per gap: 0.6 s at 10 ms apart
TRIP_TIMEOUT_S = 1.0

# The child: echo each byte back until its input closes.
_ECHO = """\
import os
while True:
    b = os.read(0, 1)
    if not b:
        break
    os.write(1, b)
"""


def _loop_ms() -> float:
    start = time.perf_counter()
    for _ in range(LOOP_STEPS):
        pass
    return (time.perf_counter() - start) * 1000


_DOC = json.dumps({"a": list(range(200)), "b": {str(i): "x" * i for i in range(60)}})


def _work() -> int:
    return len(json.dumps(json.loads(_DOC)))


def _medians_us(
    timed: Callable[[], object], gaps_ms: tuple[int, ...], trips: int
) -> dict[int, float]:
    """The median time of `timed` in us, per gap: `trips` calls, each `gap` ms after the last."""
    out: dict[int, float] = {}
    for gap in gaps_ms:
        samples = []
        for _ in range(trips):
            if gap:
                time.sleep(gap / 1000)
            start = time.perf_counter()
            timed()
            samples.append((time.perf_counter() - start) * 1_000_000)
        out[gap] = statistics.median(samples)
    return out


def _work_us(gaps_ms: tuple[int, ...], trips: int) -> dict[int, float]:
    _work()
    return _medians_us(_work, gaps_ms, trips)


def _hops_us(gaps_ms: tuple[int, ...], trips: int, python: str) -> dict[int, float]:
    with subprocess.Popen(
        [python, "-S", "-c", _ECHO],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        bufsize=0,
    ) as child:
        assert child.stdin is not None and child.stdout is not None
        w, r = child.stdin.fileno(), child.stdout.fileno()

        def trip() -> None:
            os.write(w, b"x")
            # A child that is alive but never answers must not hold the run up.
            ready, _, _ = select.select([r], [], [], TRIP_TIMEOUT_S)
            if not ready or os.read(r, 1) != b"x":
                raise OSError("the probe's child process did not echo")

        try:
            for _ in range(20):  # the child's start-up is not a figure
                trip()
            return _medians_us(trip, gaps_ms, trips)
        finally:
            child.kill()  # the figures are taken (or cannot be): no need to wait for it to end


def probe(
    *, gaps_ms: tuple[int, ...] = GAPS_MS, trips: int = TRIPS, python: str = sys.executable
) -> dict[str, float]:
    """The host's figures; a part that cannot be measured (no child process) is left out."""
    figures = {"python_loop_ms": round(min(_loop_ms() for _ in range(3)), 1)}
    for gap, us in _work_us(gaps_ms, trips).items():
        figures[f"work_{gap}ms_us"] = round(us, 1)
    try:
        hops = _hops_us(gaps_ms, trips, python)
    except OSError:
        return figures
    for gap, us in hops.items():
        figures[f"hop_{gap}ms_us"] = round(us, 1)
    return figures


def render(figures: dict[str, float]) -> str:
    """One line for the end of a run's output."""
    parts = [f"Python loop {figures['python_loop_ms']:.0f} ms"]
    for prefix, what in (("work_", "a piece of Python"), ("hop_", "a process round trip")):
        got = [
            (k.removeprefix(prefix).removesuffix("ms_us"), v)
            for k, v in figures.items()
            if k.startswith(prefix)
        ]
        if got:
            gaps = " / ".join(g for g, _ in got)
            times = " / ".join(f"{v:.0f}" for _, v in got)
            parts.append(f"{what} {times} us when {gaps} ms apart")
    return "host: " + "; ".join(parts) + " (medians)"
