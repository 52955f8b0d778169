"""The circuit breaker's states and transitions, on a clock the test moves."""

from __future__ import annotations

from switch.breaker import Breaker, BreakerState
from switch.routeconfig import BreakerConfig


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(**kw: int) -> tuple[Breaker, Clock, list[tuple[str, str]]]:
    clock = Clock()
    moves: list[tuple[str, str]] = []
    breaker = Breaker(
        BreakerConfig(**{"failures": 3, "cooldown_ms": 1000, **kw}),
        on_change=lambda was, to: moves.append((was.name, to.name)),
        clock=clock,
    )
    return breaker, clock, moves


def test_consecutive_failures_open_it_and_a_success_in_between_resets_the_count():
    b, _, moves = make()
    b.failure()
    b.failure()
    b.success()
    b.failure()
    b.failure()
    assert b.state is BreakerState.CLOSED and b.acquire()
    b.failure()
    assert b.state is BreakerState.OPEN
    assert not b.ready() and not b.acquire()
    assert moves == [("CLOSED", "OPEN")]


def test_after_the_cool_down_one_trial_goes_and_its_success_closes_it():
    b, clock, moves = make()
    for _ in range(3):
        b.failure()
    clock.now += 0.999
    assert not b.acquire()
    clock.now += 0.001
    assert b.ready()
    assert b.acquire()  # the trial
    assert b.state is BreakerState.HALF_OPEN
    assert not b.ready() and not b.acquire()  # one trial at a time
    b.success()
    assert b.state is BreakerState.CLOSED and b.acquire()
    assert moves == [("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")]


def test_a_failed_trial_opens_it_for_another_cool_down():
    b, clock, moves = make(half_open_trials=2)
    for _ in range(3):
        b.failure()
    clock.now += 1.0
    assert b.acquire() and b.acquire() and not b.acquire()
    b.failure()
    assert b.state is BreakerState.OPEN
    assert b.remaining_s() == 1.0
    clock.now += 1.0
    assert b.acquire()
    assert moves[-2:] == [("HALF_OPEN", "OPEN"), ("OPEN", "HALF_OPEN")]


def test_zero_failures_means_never_open():
    b, _, moves = make(failures=0)
    for _ in range(100):
        b.failure()
    assert b.state is BreakerState.CLOSED and moves == []


def test_new_thresholds_apply_to_the_next_failures():
    b, _, _ = make(failures=5)
    b.failure()
    b.reconfigure(BreakerConfig(failures=2, cooldown_ms=1000))
    b.failure()
    assert b.state is BreakerState.OPEN
