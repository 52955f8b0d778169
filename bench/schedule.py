"""How load is shared among generator processes, and the open loop's intended send times."""

from __future__ import annotations

import math

NS_PER_S = 1_000_000_000


def split_evenly(total: int, parts: int) -> list[int]:
    """`total` shared among `parts` as evenly as whole numbers allow (earlier parts get more)."""
    if parts <= 0:
        raise ValueError("parts must be positive")
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def intended_send_ns(
    *, start_ns: int, rate: float, processes: int, process_index: int, k: int
) -> int:
    """When process `process_index` should send its `k`-th request in an open loop.

    The whole run sends request n at start + n / rate. Process p sends requests p, p + P,
    p + 2P, ... so the processes interleave into one even stream rather than P bursts.
    Latency is measured from this time, not from when the request actually left: a server (or
    a generator) that falls behind cannot hide the queue it caused (no coordinated omission).
    """
    n = process_index + k * processes
    return start_ns + int(n * NS_PER_S / rate)


def open_loop_count(*, rate: float, seconds: float, processes: int, process_index: int) -> int:
    """How many requests process `process_index` sends in `seconds` of an open loop at `rate`.

    Exactly the n = p + kP with n / rate < seconds, so the processes together send
    ceil(rate * seconds) requests.
    """
    total = math.ceil(rate * seconds - 1e-9)
    return open_loop_share(total=total, processes=processes, process_index=process_index)


def open_loop_share(*, total: int, processes: int, process_index: int) -> int:
    """How many of `total` requests process `process_index` sends (n = p + kP < total)."""
    return max(0, (total - process_index + processes - 1) // processes)
