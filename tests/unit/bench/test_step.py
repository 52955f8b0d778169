"""Step mode against a hand-written stand-in for the runner: where capacity is found."""

from __future__ import annotations

from typing import Any

import pytest

from bench import step, table
from bench.config import ConfigError, Load, RunConfig, Target
from bench.scenarios import SCENARIOS

BASE = RunConfig(target=Target(address="127.0.0.1:1"), load=Load(), scenario=SCENARIOS["authorize"])


class FakeServer:
    """Answers within 2 ms up to its capacity; past it, queues build and p99 is 50 ms."""

    def __init__(self, capacity: float, errors_above: float | None = None) -> None:
        self.capacity = capacity
        self.errors_above = errors_above
        self.rates: list[float] = []

    def run(self, cfg: RunConfig, *, out: Any = None) -> dict[str, Any]:
        assert cfg.load.mode == "open"
        rate = cfg.load.rate
        self.rates.append(rate)
        p99 = 2000 if rate <= self.capacity else 50_000
        calls = int(rate * (cfg.load.duration_s or 0))
        failing = self.errors_above is not None and rate > self.errors_above
        errors = calls // 20 if failing else 0
        return {
            "calls": calls,
            "errors": errors,
            "measure_s": cfg.load.duration_s,
            "error_ratio": errors / calls if calls else 0.0,
            "rpcs": {"Authorize": {"calls": calls, "errors": errors, "latency_us": {"p99": p99}}},
        }


def test_capacity_is_the_last_rate_that_held() -> None:
    server = FakeServer(capacity=2500)
    found = step.search(
        BASE,
        step.Steps(start_rate=1000, step_rate=1000, max_rate=10_000, step_s=2),
        step.Objective(p99_ms=10),
        run=server.run,
        out=None,
    )
    assert server.rates == [1000, 2000, 3000]
    assert found["capacity_rps"] == 2000
    assert found["first_broken_rps"] == 3000
    assert "p99" in found["steps"][-1]["reason"]


def test_refinement_bisects_between_held_and_broken() -> None:
    server = FakeServer(capacity=2600)
    found = step.search(
        BASE,
        step.Steps(start_rate=1000, step_rate=1000, max_rate=10_000, step_s=2, refine=3),
        step.Objective(p99_ms=10),
        run=server.run,
        out=None,
    )
    assert server.rates == [1000, 2000, 3000, 2500, 2750, 2625]
    assert found["capacity_rps"] == 2500


class FlakyServer(FakeServer):
    """Like FakeServer, but the first try at each rate in `bursts` meets a noisy neighbour."""

    def __init__(self, capacity: float, bursts: set[float]) -> None:
        super().__init__(capacity)
        self.bursts = bursts

    def run(self, cfg: RunConfig, *, out: Any = None) -> dict[str, Any]:
        result = super().run(cfg, out=out)
        if cfg.load.rate in self.bursts:
            self.bursts.discard(cfg.load.rate)
            result["rpcs"]["Authorize"]["latency_us"]["p99"] = 900_000
        return result


def test_a_broken_step_is_retried_before_it_counts() -> None:
    server = FlakyServer(capacity=2000, bursts={1000})
    found = step.search(
        BASE,
        step.Steps(start_rate=1000, step_rate=1000, max_rate=5000, step_s=1, retries=1),
        step.Objective(p99_ms=10),
        run=server.run,
        out=None,
    )
    assert server.rates == [1000, 1000, 2000, 3000, 3000]
    assert found["capacity_rps"] == 2000
    assert [s["held"] for s in found["steps"]] == [False, True, True, False, False]


class IdempotentServer(FakeServer):
    """Like FakeServer, but a request whose key it has seen is a fast replay, as on the switch."""

    def __init__(self, capacity: float) -> None:
        super().__init__(capacity)
        self.seen: set[str] = set()

    def run(self, cfg: RunConfig, *, out: Any = None) -> dict[str, Any]:
        result = super().run(cfg, out=out)
        if cfg.run_id in self.seen:
            result["rpcs"]["Authorize"]["latency_us"]["p99"] = 1000
        self.seen.add(cfg.run_id)
        return result


def test_every_step_and_retry_sends_new_keys_so_replays_cannot_inflate_capacity() -> None:
    server = IdempotentServer(capacity=2000)
    found = step.search(
        BASE,
        step.Steps(start_rate=1000, step_rate=1000, max_rate=5000, step_s=1, retries=2),
        step.Objective(p99_ms=10),
        run=server.run,
        out=None,
    )
    assert found["capacity_rps"] == 2000
    assert len(server.seen) == len(server.rates) == 5


def test_errors_break_the_objective_too() -> None:
    server = FakeServer(capacity=10_000, errors_above=1500)
    found = step.search(
        BASE,
        step.Steps(start_rate=1000, step_rate=1000, max_rate=5000, step_s=1),
        step.Objective(p99_ms=10, error_ratio=0.01),
        run=server.run,
        out=None,
    )
    assert found["capacity_rps"] == 1000
    assert found["steps"][-1]["reason"].startswith("errors")
    # What a step achieved is the payments that went through: 2,000 offered, 5% failed.
    assert found["steps"][-1]["achieved"] == 1900.0


def test_reaching_the_maximum_rate_is_said() -> None:
    found = step.search(
        BASE,
        step.Steps(start_rate=100, step_rate=100, max_rate=300, step_s=1),
        step.Objective(p99_ms=10),
        run=FakeServer(capacity=1e9).run,
        out=None,
    )
    assert found["capacity_rps"] == 300
    assert found["reached_max_rate"]


def test_the_max_rate_is_tried_where_the_steps_do_not_land_on_it() -> None:
    server = FakeServer(capacity=1e9)
    found = step.search(
        BASE,
        step.Steps(start_rate=200, step_rate=200, max_rate=1100, step_s=1),
        step.Objective(p99_ms=10),
        run=server.run,
        out=None,
    )
    assert server.rates == [200, 400, 600, 800, 1000, 1100]
    assert found["capacity_rps"] == 1100 and found["reached_max_rate"]
    said = table.render_steps(found["steps"], found["capacity_rps"], reached_max=True)
    assert "at least 1,100/s" in said, "a lower bound, not the capacity"


def test_nothing_held() -> None:
    found = step.search(
        BASE,
        step.Steps(start_rate=5000, step_rate=100, max_rate=6000, step_s=1),
        step.Objective(p99_ms=10),
        run=FakeServer(capacity=100).run,
        out=None,
    )
    assert found["capacity_rps"] is None
    assert len(found["steps"]) == 1


def test_then_runs_at_a_share_of_the_capacity_just_found() -> None:
    server = FakeServer(capacity=2500)
    found = step.search(
        BASE,
        step.Steps(start_rate=1000, step_rate=1000, max_rate=10_000, step_s=2, then_share=0.5),
        step.Objective(p99_ms=10),
        run=server.run,
        out=None,
    )
    assert server.rates == [1000, 2000, 3000, 1000, 1000, 1000]
    assert found["then"]["rate"] == 1000
    assert found["then"]["share"] == 0.5
    assert len(found["then"]["runs"]) == 3


def test_then_runs_send_new_keys_and_stay_a_step_long() -> None:
    server = IdempotentServer(capacity=2000)
    found = step.search(
        BASE,
        step.Steps(
            start_rate=1000, step_rate=1000, max_rate=5000, step_s=3, then_share=0.8, then_runs=2
        ),
        step.Objective(p99_ms=10),
        run=server.run,
        out=None,
    )
    assert server.rates[-2:] == [1600, 1600]
    assert len(server.seen) == len(server.rates)
    assert [r["measure_s"] for r in found["then"]["runs"]] == [3, 3]


def test_a_share_of_a_small_capacity_is_not_rounded_to_nothing() -> None:
    server = FakeServer(capacity=1)
    found = step.search(
        BASE,
        step.Steps(start_rate=1, step_rate=1, max_rate=5, step_s=1, then_share=0.4, then_runs=1),
        step.Objective(p99_ms=10),
        run=server.run,
        out=None,
    )
    assert found["capacity_rps"] == 1
    assert found["then"]["rate"] == pytest.approx(0.4)
    assert server.rates[-1] == pytest.approx(0.4)


def test_no_then_runs_when_no_rate_held() -> None:
    server = FakeServer(capacity=100)
    found = step.search(
        BASE,
        step.Steps(start_rate=5000, step_rate=100, max_rate=6000, step_s=1, then_share=0.5),
        step.Objective(p99_ms=10),
        run=server.run,
        out=None,
    )
    assert "then" not in found
    assert server.rates == [5000]


@pytest.mark.parametrize(
    ("steps", "objective"),
    [
        (step.Steps(start_rate=0, step_rate=1, max_rate=1), step.Objective(p99_ms=1)),
        (step.Steps(start_rate=10, step_rate=1, max_rate=5), step.Objective(p99_ms=1)),
        (step.Steps(start_rate=1, step_rate=1, max_rate=5), step.Objective(p99_ms=0)),
        (
            step.Steps(start_rate=1, step_rate=1, max_rate=5),
            step.Objective(p99_ms=1, error_ratio=2),
        ),
        (step.Steps(start_rate=1, step_rate=1, max_rate=5, retries=-1), step.Objective(p99_ms=1)),
        (step.Steps(start_rate=1, step_rate=1, max_rate=5, then_share=0), step.Objective(p99_ms=1)),
        (
            step.Steps(start_rate=1, step_rate=1, max_rate=5, then_share=1.5),
            step.Objective(p99_ms=1),
        ),
        (
            step.Steps(start_rate=1, step_rate=1, max_rate=5, then_share=0.5, then_runs=0),
            step.Objective(p99_ms=1),
        ),
    ],
)
def test_bad_settings_are_refused(steps: step.Steps, objective: step.Objective) -> None:
    with pytest.raises(ConfigError):
        step.search(BASE, steps, objective, run=FakeServer(1).run, out=None)
