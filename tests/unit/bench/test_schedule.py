"""The open loop's intended send times and how load is split among processes."""

from __future__ import annotations

import pytest

from bench import schedule


def test_processes_interleave_into_one_even_stream() -> None:
    rate, processes, start = 1000.0, 3, 5_000_000_000
    times = []
    for p in range(processes):
        count = schedule.open_loop_count(
            rate=rate, seconds=0.1, processes=processes, process_index=p
        )
        times += [
            schedule.intended_send_ns(
                start_ns=start, rate=rate, processes=processes, process_index=p, k=k
            )
            for k in range(count)
        ]
    times.sort()
    # 100 requests in 0.1 s at 1000/s, exactly 1 ms apart from the start.
    assert len(times) == 100
    assert times == [start + n * 1_000_000 for n in range(100)]


def test_intended_times_do_not_depend_on_when_requests_are_answered() -> None:
    # The schedule is a pure function of the index: a stalled server cannot move it.
    first = schedule.intended_send_ns(start_ns=0, rate=250.0, processes=2, process_index=1, k=9)
    again = schedule.intended_send_ns(start_ns=0, rate=250.0, processes=2, process_index=1, k=9)
    assert first == again == (1 + 9 * 2) * 4_000_000


@pytest.mark.parametrize(("total", "processes"), [(10, 3), (7, 7), (1000, 4), (5, 2)])
def test_shares_add_up_to_the_total(total: int, processes: int) -> None:
    shares = [
        schedule.open_loop_share(total=total, processes=processes, process_index=p)
        for p in range(processes)
    ]
    assert sum(shares) == total
    assert sum(schedule.split_evenly(total, processes)) == total
    assert max(shares) - min(shares) <= 1


def test_open_loop_count_rounds_up_partial_requests() -> None:
    counts = [
        schedule.open_loop_count(rate=333.0, seconds=1.0, processes=2, process_index=p)
        for p in range(2)
    ]
    assert sum(counts) == 333


def test_split_evenly_rejects_zero_parts() -> None:
    with pytest.raises(ValueError, match="parts"):
        schedule.split_evenly(5, 0)
