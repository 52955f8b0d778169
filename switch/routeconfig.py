"""The `[routing]` table: strategy, success-rate window, breaker, cascading, fees and rules.

Parsed once into frozen dataclasses; every problem is a ConfigError naming the key, e.g.
`routing.rules[0].bins[1]: must be digits or LOW-HIGH ...`. The defaults keep plain priority
and weight routing with no cascading; only the circuit breaker is on by default.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from payswitch.common.v1 import decline_code_pb2
from switch.config import (
    CHANNEL_NAME,
    ConfigError,
    _array,
    _get,
    _match,
    _one_of,
    _only,
    _range,
    _req,
    _table,
)

STRATEGIES = ("priority", "success_rate", "least_cost")
MODES = ("only", "prefer")
CURRENCY = re.compile(r"^[A-Z]{3}\Z")
BIN_SPEC = re.compile(r"^([0-9]{1,8})(?:-([0-9]{1,8}))?\Z")


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Per endpoint: `failures` consecutive failures open it (0: never), for `cooldown_ms`."""

    failures: int = 5
    cooldown_ms: int = 5000
    half_open_trials: int = 1


@dataclass(frozen=True, slots=True)
class Fee:
    """What a channel charges per payment in one currency: basis points plus a fixed fee."""

    channel: str
    currency: str
    percent_bp: int = 0
    fixed_minor: int = 0

    def cost(self, amount: int) -> int:
        """The fee in minor units, rounded half up: integer arithmetic only."""
        return (amount * self.percent_bp + 5_000) // 10_000 + self.fixed_minor


@dataclass(frozen=True, slots=True)
class BinRange:
    """Card BINs whose first `len(low)` digits lie from low to high."""

    low: str
    high: str

    def contains(self, card_bin: str) -> bool:
        n = len(self.low)
        return len(card_bin) >= n and self.low <= card_bin[:n] <= self.high

    def __str__(self) -> str:
        return self.low if self.low == self.high else f"{self.low}-{self.high}"


@dataclass(frozen=True, slots=True)
class Rule:
    """Payments matching every condition given go `only` to, or `prefer`, the listed channels."""

    name: str
    channels: tuple[str, ...]
    mode: str = "only"
    bins: tuple[BinRange, ...] = ()
    currencies: frozenset[str] = frozenset()
    min_amount: int = 0
    max_amount: int = 0

    def matches(self, card_bin: str, currency: str, amount: int) -> bool:
        return (
            (not self.bins or any(b.contains(card_bin) for b in self.bins))
            and (not self.currencies or currency in self.currencies)
            and amount >= self.min_amount
            and (not self.max_amount or amount <= self.max_amount)
        )


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    strategy: str = "priority"
    exploration: float = 0.05
    success_window_s: int = 300
    success_min_samples: int = 20
    sync_interval_ms: int = 1000
    cascade_decline_codes: frozenset[int] = frozenset()
    max_cascades: int = 1
    breaker: BreakerConfig = BreakerConfig()
    fees: tuple[Fee, ...] = ()
    rules: tuple[Rule, ...] = ()


def parse_routing(raw: dict[str, Any], channels: Collection[str]) -> RoutingConfig:
    """Validate the `[routing]` table against the configured channel names."""
    _only(raw, "routing", set(RoutingConfig.__slots__))
    codes: list[Any] = _get(raw, "routing.cascade_decline_codes", list, [])
    fees = tuple(_fee(f, f"routing.fees[{i}]", channels) for i, f in enumerate(_array(raw, "fees")))
    seen: set[tuple[str, str]] = set()
    for i, fee in enumerate(fees):
        if (fee.channel, fee.currency) in seen:
            raise ConfigError(
                f"routing.fees[{i}]: a second fee for {fee.channel} in {fee.currency}"
            )
        seen.add((fee.channel, fee.currency))
    rules = tuple(
        _rule(r, f"routing.rules[{i}]", channels) for i, r in enumerate(_array(raw, "rules"))
    )
    names = [r.name for r in rules]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"routing.rules[{i}].name: duplicate value {name!r}")
    return RoutingConfig(
        strategy=_get(raw, "routing.strategy", str, "priority", _one_of(*STRATEGIES)),
        exploration=float(_get(raw, "routing.exploration", (int, float), 0.05, _range(0, 0.5))),
        success_window_s=_get(raw, "routing.success_window_s", int, 300, _range(2, 86_400)),
        success_min_samples=_get(raw, "routing.success_min_samples", int, 20, _range(1, 1_000_000)),
        sync_interval_ms=_get(raw, "routing.sync_interval_ms", int, 1000, _range(50, 60_000)),
        cascade_decline_codes=frozenset(
            _decline_code(c, f"routing.cascade_decline_codes[{i}]") for i, c in enumerate(codes)
        ),
        max_cascades=_get(raw, "routing.max_cascades", int, 1, _range(0, 5)),
        breaker=_breaker(_table(raw, "breaker")),
        fees=fees,
        rules=rules,
    )


def _breaker(raw: dict[str, Any]) -> BreakerConfig:
    _only(raw, "routing.breaker", set(BreakerConfig.__slots__))
    return BreakerConfig(
        failures=_get(raw, "routing.breaker.failures", int, 5, _range(0, 10_000)),
        cooldown_ms=_get(raw, "routing.breaker.cooldown_ms", int, 5000, _range(10, 3_600_000)),
        half_open_trials=_get(raw, "routing.breaker.half_open_trials", int, 1, _range(1, 100)),
    )


def _decline_code(value: Any, where: str) -> int:
    names = [n.removeprefix("DECLINE_CODE_") for n in decline_code_pb2.DeclineCode.keys()][1:]  # noqa: SIM118
    if not isinstance(value, str) or value.upper() not in names:
        raise ConfigError(
            f"{where}: must be a decline code name ({', '.join(names)}), got {value!r}"
        )
    return int(decline_code_pb2.DeclineCode.Value("DECLINE_CODE_" + value.upper()))


def _known(value: Any, where: str, channels: Collection[str]) -> str:
    if not isinstance(value, str) or value not in channels:
        raise ConfigError(f"{where}: no channel named {value!r} in [[channels]]")
    return value


def _fee(raw: Any, where: str, channels: Collection[str]) -> Fee:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    _only(raw, where, set(Fee.__slots__))
    return Fee(
        channel=_known(_req(raw, f"{where}.channel", str), f"{where}.channel", channels),
        currency=_req(raw, f"{where}.currency", str, _match(CURRENCY, "an ISO 4217 code")),
        percent_bp=_get(raw, f"{where}.percent_bp", int, 0, _range(0, 10_000)),
        fixed_minor=_get(raw, f"{where}.fixed_minor", int, 0, _range(0, 10**12)),
    )


def _rule(raw: Any, where: str, channels: Collection[str]) -> Rule:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    _only(raw, where, set(Rule.__slots__))
    listed = _req(raw, f"{where}.channels", list)
    if not listed:
        raise ConfigError(f"{where}.channels: must name at least one channel")
    targets = tuple(_known(c, f"{where}.channels[{i}]", channels) for i, c in enumerate(listed))
    currencies: list[Any] = _get(raw, f"{where}.currencies", list, [])
    for i, c in enumerate(currencies):
        if not isinstance(c, str) or not CURRENCY.match(c):
            raise ConfigError(f"{where}.currencies[{i}]: must be an ISO 4217 code, got {c!r}")
    bins: list[Any] = _get(raw, f"{where}.bins", list, [])
    min_amount = _get(raw, f"{where}.min_amount", int, 0, _range(0, 10**15))
    max_amount = _get(raw, f"{where}.max_amount", int, 0, _range(0, 10**15))
    if max_amount and max_amount < min_amount:
        raise ConfigError(f"{where}.max_amount: must be 0 (no limit) or at least min_amount")
    return Rule(
        name=_req(raw, f"{where}.name", str, _match(CHANNEL_NAME, "1-32 characters of [a-z0-9_]")),
        channels=targets,
        mode=_get(raw, f"{where}.mode", str, "only", _one_of(*MODES)),
        bins=tuple(_bins(x, f"{where}.bins[{i}]") for i, x in enumerate(bins)),
        currencies=frozenset(currencies),
        min_amount=min_amount,
        max_amount=max_amount,
    )


def _bins(value: Any, where: str) -> BinRange:
    m = BIN_SPEC.match(value) if isinstance(value, str) else None
    if m is None or (m[2] is not None and (len(m[2]) != len(m[1]) or m[2] < m[1])):
        raise ConfigError(
            f"{where}: must be a BIN prefix of 1-8 digits or LOW-HIGH of equal length with "
            f'LOW <= HIGH (e.g. "400000-499999"), got {value!r}'
        )
    return BinRange(low=m[1], high=m[2] or m[1])
