"""Step mode: raise an open loop's rate until latency or errors break the objective (capacity)."""

from __future__ import annotations

import dataclasses
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from bench.config import ConfigError, RunConfig

RunFn = Callable[..., dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Objective:
    """What must hold at a rate: every RPC's p99 and the share of unexpected outcomes."""

    p99_ms: float
    error_ratio: float = 0.001

    def check(self) -> None:
        if self.p99_ms <= 0:
            raise ConfigError("--slo-p99-ms: must be positive")
        if not 0 <= self.error_ratio < 1:
            raise ConfigError("--slo-errors: a ratio from 0 up to 1")

    def judge(self, result: dict[str, Any]) -> tuple[bool, str, int]:
        """(held, why not, worst p99 in us) for one step's figures."""
        worst_rpc, worst = "", 0
        for rpc, r in result["rpcs"].items():
            if r["latency_us"]["p99"] > worst:
                worst_rpc, worst = rpc, int(r["latency_us"]["p99"])
        if not result["calls"]:
            return False, "no call completed", worst
        if worst > self.p99_ms * 1000:
            return False, f"{worst_rpc} p99 {worst / 1000:.2f} ms > {self.p99_ms:g} ms", worst
        if result["error_ratio"] > self.error_ratio:
            return (
                False,
                f"errors {result['error_ratio']:.2%} > {self.error_ratio:.2%}",
                worst,
            )
        return True, "", worst


@dataclass(frozen=True, slots=True)
class Steps:
    """The rates to try: start, start + step, ... up to max; then `refine` bisections.

    A rate that breaks is tried again up to `retries` times before it counts as broken.
    """

    start_rate: float
    step_rate: float
    max_rate: float
    step_s: float = 10.0
    warmup_s: float = 2.0
    refine: int = 0
    retries: int = 0
    then_share: float | None = None
    then_runs: int = 3

    def check(self) -> None:
        if self.start_rate <= 0 or self.step_rate <= 0:
            raise ConfigError("--start-rate / --step-rate: must be positive")
        if self.max_rate < self.start_rate:
            raise ConfigError("--max-rate: must be at least --start-rate")
        if self.step_s <= 0:
            raise ConfigError("--step-duration: must be positive")
        if self.refine < 0:
            raise ConfigError("--refine: must not be negative")
        if self.retries < 0:
            raise ConfigError("--retries: must not be negative")
        if self.then_share is not None and not 0 < self.then_share <= 1:
            raise ConfigError("--then-at: a share of the capacity, more than 0 and at most 1")
        if self.then_runs < 1:
            raise ConfigError("--then-runs: at least 1")

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def _at_rate(base: RunConfig, steps: Steps, rate: float) -> RunConfig:
    load = dataclasses.replace(
        base.load,
        mode="open",
        rate=rate,
        duration_s=steps.step_s,
        requests=None,
        warmup_s=steps.warmup_s,
    )
    # Every step, and every retry of one, needs idempotency keys of its own: keys repeated from
    # an earlier step would be answered as replays (no channel, no claim) and overstate capacity.
    return dataclasses.replace(base, load=load, run_id=secrets.token_hex(4))


def search(
    base: RunConfig,
    steps: Steps,
    objective: Objective,
    *,
    run: RunFn,
    out: TextIO | None = sys.stderr,
) -> dict[str, Any]:
    """Try rising rates; the capacity is the highest rate whose step held the objective."""
    steps.check()
    objective.check()
    tried: list[dict[str, Any]] = []

    def attempt(rate: float) -> bool:
        # A step that broke is run again up to `retries` times: on a shared machine one
        # neighbour's burst can break a rate the target holds. Every try is kept.
        return any(once(rate) for _ in range(1 + steps.retries))

    def once(rate: float) -> bool:
        if out is not None:
            print(f"step: {rate:,.0f} calls/s for {steps.step_s:g} s", file=out)
        result = run(_at_rate(base, steps, rate), out=out)
        held, reason, worst = objective.judge(result)
        # Every operation starts with an Authorize: its rate is the payments' (with the expected
        # outcome: a target that fails calls at once achieves nothing by it).
        first = result["rpcs"].get("Authorize", result)
        answered = first["calls"] - first["errors"]
        tried.append(
            {
                "rate": rate,
                "achieved": round(answered / result["measure_s"], 1),
                "p99_us": worst,
                "error_ratio": result["error_ratio"],
                "held": held,
                "reason": reason,
                "result": result,
            }
        )
        if out is not None:
            print(f"step: {rate:,.0f} calls/s {'held' if held else 'broke: ' + reason}", file=out)
        return held

    held_rate: float | None = None
    broke_rate: float | None = None
    rate = steps.start_rate
    while True:
        if attempt(rate):
            held_rate = rate
        else:
            broke_rate = rate
            break
        if rate >= steps.max_rate - 1e-9:
            break
        # The last step is the max rate itself, where the steps do not land on it.
        rate = min(rate + steps.step_rate, steps.max_rate)
    if held_rate is not None and broke_rate is not None:
        for _ in range(steps.refine):
            middle = round((held_rate + broke_rate) / 2)
            if middle in (held_rate, broke_rate):
                break
            if attempt(middle):
                held_rate = middle
            else:
                broke_rate = middle
    found: dict[str, Any] = {
        "steps": tried,
        "capacity_rps": held_rate,
        "first_broken_rps": broke_rate,
        "reached_max_rate": broke_rate is None and held_rate is not None,
    }
    if steps.then_share is not None and held_rate is not None:
        found["then"] = at_share(base, steps, held_rate, run=run, out=out)
    return found


def at_share(
    base: RunConfig,
    steps: Steps,
    capacity: float,
    *,
    run: RunFn,
    out: TextIO | None = sys.stderr,
) -> dict[str, Any]:
    """Open loops at a share of the capacity just found, each a step long.

    A figure "at half capacity" is only worth something against the capacity of the same
    minutes: a shared machine's speed moves by tens of percent within the hour, and half of
    an earlier hour's capacity may be most of this one's.
    """
    assert steps.then_share is not None
    rate = capacity * steps.then_share  # not rounded: a small capacity's share is not 0
    runs = []
    for i in range(steps.then_runs):
        if out is not None:
            print(
                f"at {steps.then_share:.0%} of capacity: {rate:,.1f} calls/s for {steps.step_s:g} s"
                f" ({i + 1}/{steps.then_runs})",
                file=out,
            )
        runs.append(run(_at_rate(base, steps, rate), out=out))
    return {"share": steps.then_share, "rate": rate, "runs": runs}
