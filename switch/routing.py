"""Choosing channels: capabilities, rules, priority, then success rate or cost or weight.

The order of candidates for a payment, all from memory:
1. channels whose capabilities take the payment (method, currency, amount, capture mode);
2. the first `[[routing.rules]]` entry matching the card BIN, currency and amount restricts
   them (`only`) or puts its channels first (`prefer`);
3. channels that are unavailable (no healthy endpoint, or every breaker open) drop out;
4. lower `priority` numbers first; within a priority the strategy decides: `success_rate`
   (higher approval rate over the window first; rates below the sample minimum count as
   perfect, and an `exploration` share of payments ignores rates so a recovering channel is
   tried again), `least_cost` (the lower fee for the amount first) or `priority` (none);
5. remaining ties are a weighted random permutation by `weight`.
"""

from __future__ import annotations

import itertools
import operator
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from switch.config import ChannelConfig
from switch.errors import ChannelUnavailable, NoRoute
from switch.model import MethodType, fast_frozen
from switch.pool import Capabilities
from switch.routeconfig import Fee, RoutingConfig, Rule

NO_FEE = 1 << 62  # sorts after every real fee
_CAPABILITIES = operator.attrgetter("capabilities")


class Candidate(Protocol):
    """What routing needs of a channel (switch.pool.ChannelClient in production)."""

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> ChannelConfig: ...

    @property
    def capabilities(self) -> Capabilities | None: ...

    def available(self) -> bool: ...


class Rates(Protocol):
    """Approval rates over the window (switch.routestate.RouteState in production)."""

    def rate(self, channel: str) -> float | None: ...

    def counts(self, channel: str) -> tuple[int, int]: ...


class NoRates:
    """Rates of a switch that has learned nothing: every rate unknown."""

    def rate(self, channel: str) -> float | None:
        return None

    def counts(self, channel: str) -> tuple[int, int]:
        return (0, 0)


C = TypeVar("C", bound=Candidate)


@dataclass(frozen=True, slots=True)
class RouteRequest:
    method: MethodType
    currency: str
    amount: int
    manual_capture: bool
    card_bin: str = ""  # the first six digits of a card number; "" for wallets


fast_frozen(RouteRequest)  # one per payment: built the way Payment is (see switch/model.py)


@dataclass(frozen=True, slots=True)
class Policy:
    """The reloadable part of routing, swapped whole by Router.reconfigure."""

    strategy: str
    exploration: float
    fees: dict[tuple[str, str], Fee]
    rules: tuple[Rule, ...]
    cascade_codes: frozenset[int]
    max_cascades: int

    @classmethod
    def of(cls, cfg: RoutingConfig) -> Policy:
        return cls(
            strategy=cfg.strategy,
            exploration=cfg.exploration,
            fees={(f.channel, f.currency): f for f in cfg.fees},
            rules=cfg.rules,
            cascade_codes=cfg.cascade_decline_codes,
            max_cascades=cfg.max_cascades,
        )


@dataclass(slots=True)
class Explained:
    """One channel in `routes explain`: its place in the order (None: not a candidate), and why."""

    channel: str
    position: int | None = None
    reasons: list[str] = field(default_factory=list)


class Router(Generic[C]):
    """Orders candidate channels for a payment. Lower priority numbers are tried first."""

    def __init__(
        self,
        channels: Iterable[C],
        *,
        routing: RoutingConfig | None = None,
        rates: Rates | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._channels = list(channels)
        self._rates = rates or NoRates()
        self._rng = rng or random.Random()
        self._policy = Policy.of(routing or RoutingConfig())
        self._takers: dict[tuple[MethodType, str, bool], _Takers[C]] = {}
        self._takers_of: tuple[Capabilities | None, ...] = ()

    def _taking(self, method: MethodType, currency: str, manual: bool) -> _Takers[C]:
        """The described channels that take this method, currency and capture mode, whatever the
        amount: worked out once per combination while the channels' capabilities stay the same
        (they change when a channel is first described)."""
        described = tuple(map(_CAPABILITIES, self._channels))
        if described != self._takers_of:
            self._takers, self._takers_of = {}, described
        key = (method, currency, manual)
        takers = self._takers.get(key)
        if takers is None:
            found = [
                c
                for c in self._channels
                if c.capabilities is not None
                and method in c.capabilities.methods
                and currency in c.capabilities.currencies
                and (c.capabilities.manual_capture or not manual)
            ]
            by_priority = sorted(found, key=_priority)
            distinct = len({c.config.priority for c in found}) == len(found)
            takers = self._takers[key] = _Takers(found, by_priority if distinct else None)
        return takers

    def reconfigure(self, routing: RoutingConfig) -> None:
        """Swap strategy, exploration, fees, rules and cascading (a config reload)."""
        self._policy = Policy.of(routing)

    def cascades_after(self, decline_code: int, cascaded: int) -> bool:
        """Whether a decline with this code, after `cascaded` cascades, may go on to the next."""
        p = self._policy
        return cascaded < p.max_cascades and decline_code in p.cascade_codes

    def candidates(self, req: RouteRequest) -> list[C]:
        """Matching, available channels in the order to try them; NoRoute or ChannelUnavailable."""
        policy = self._policy
        amount = req.amount
        takers = self._taking(req.method, req.currency, req.manual_capture)
        if takers.by_priority is not None and not policy.rules:
            # One channel per priority and no rules: the order is the priority order, whatever
            # the strategy and the weights; only amount bounds and availability remain.
            fast = [
                c
                for c in takers.by_priority
                if c.capabilities is not None
                and amount >= c.capabilities.min_amount
                and (c.capabilities.max_amount == 0 or amount <= c.capabilities.max_amount)
                and c.available()
            ]
            if fast:
                return fast  # none: the general path below says why
        matching = [
            c
            for c in takers.found
            if c.capabilities is not None  # set once described; never unset
            and amount >= c.capabilities.min_amount
            and (c.capabilities.max_amount == 0 or amount <= c.capabilities.max_amount)
        ]
        if not matching:
            if any(c.capabilities is None for c in self._channels):
                raise ChannelUnavailable(
                    "no channel that could take this payment has said what it supports yet; "
                    "nothing was sent"
                )
            raise NoRoute(
                f"no channel takes {req.method.name} payments of {req.amount} {req.currency}"
                + (" with manual capture" if req.manual_capture else "")
            )
        rule = _rule(policy, req)
        if rule is not None and rule.mode == "only":
            matching = [c for c in matching if c.name in rule.channels]
            if not matching:
                raise NoRoute(
                    f"routing rule {rule.name} sends this payment only to "
                    f"{', '.join(rule.channels)}, and none of them takes it"
                )
        available = [c for c in matching if c.available()]
        if not available:
            names = ", ".join(c.name for c in matching)
            raise ChannelUnavailable(
                f"every channel that could take this payment is down ({names}); nothing was sent"
            )
        if len(available) == 1:
            return available
        # Rule rank and priority come first in the order; when they tell every candidate apart
        # (the common setup: one channel per priority), strategy and weights cannot change it.
        ranked = sorted(
            [(_rank(rule, c.name), c.config.priority, i) for i, c in enumerate(available)]
        )
        if all(a[:2] != b[:2] for a, b in itertools.pairwise(ranked)):
            return [available[k[2]] for k in ranked]
        strategy = policy.strategy
        if strategy == "success_rate" and self._rng.random() < policy.exploration:
            strategy = "priority"
        rng = self._rng.random
        # Efraimidis-Spirakis: sorting by u ** (1 / weight) is a weighted random permutation.
        keyed = [
            (
                _rank(rule, c.name),
                c.config.priority,
                self._strategy_key(strategy, policy, c.name, req),
                -(rng() ** (1.0 / c.config.weight)),
                i,
                c,
            )
            for i, c in enumerate(available)
        ]
        keyed.sort()
        return [k[-1] for k in keyed]

    def _strategy_key(self, strategy: str, policy: Policy, name: str, req: RouteRequest) -> int:
        if strategy == "success_rate":
            rate = self._rates.rate(name)
            return -100 if rate is None else -round(rate * 100)
        if strategy == "least_cost":
            fee = policy.fees.get((name, req.currency))
            return NO_FEE if fee is None else fee.cost(req.amount)
        return 0

    def explain(self, req: RouteRequest) -> list[Explained]:
        """Every channel with its place in the order for `req` (without exploration), and why."""
        policy = self._policy
        rule = _rule(policy, req)
        rows: dict[str, Explained] = {c.name: Explained(c.name) for c in self._channels}
        keyed = []
        for i, c in enumerate(self._channels):
            why = rows[c.name].reasons
            if c.capabilities is None:
                why.append("not described yet (its adapter has not answered Describe)")
                continue
            mismatch = capability_mismatch(c.capabilities, req)
            if mismatch:
                why.append(f"capability mismatch: {mismatch}")
                continue
            if rule is not None:
                listed = c.name in rule.channels
                if rule.mode == "only" and not listed:
                    why.append(f"excluded by rule {rule.name} (only {', '.join(rule.channels)})")
                    continue
                why.append(
                    f"rule {rule.name}: {rule.mode} "
                    + ("(listed)" if listed else "(not listed: after the listed channels)")
                )
            if not c.available():
                why.append("unavailable: no healthy endpoint, or every breaker open")
                continue
            why.append(f"priority {c.config.priority}, weight {c.config.weight}")
            why.append(self._describe_strategy(policy, c.name, req))
            key = self._strategy_key(policy.strategy, policy, c.name, req)
            keyed.append((_rank(rule, c.name), c.config.priority, key, -c.config.weight, i, c))
        keyed.sort()
        for n, (*_, c) in enumerate(keyed, 1):
            rows[c.name].position = n
        ordered = sorted(rows.values(), key=lambda r: (r.position is None, r.position or 0))
        return ordered

    def _describe_strategy(self, policy: Policy, name: str, req: RouteRequest) -> str:
        fee = policy.fees.get((name, req.currency))
        cost = (
            f"fee {fee.cost(req.amount)} minor units ({fee.percent_bp} bp + {fee.fixed_minor})"
            if fee is not None
            else f"no fee configured for {req.currency}"
        )
        approved, total = self._rates.counts(name)
        rate = self._rates.rate(name)
        seen = (
            f"approval {rate:.0%} ({approved} of {total} in the window)"
            if rate is not None
            else f"approval rate not known yet ({total} answers in the window): counts as 100%"
        )
        marker = {"success_rate": seen, "least_cost": cost}.get(policy.strategy)
        if marker is None:
            return f"{seen}; {cost} (strategy priority: weight decides among equals)"
        other = cost if policy.strategy == "success_rate" else seen
        return f"{marker} [strategy {policy.strategy}]; {other}"


@dataclass(slots=True)
class _Takers(Generic[C]):
    """The channels taking one kind of payment, in config order, and in priority order when no
    two of them share a priority (None otherwise)."""

    found: list[C]
    by_priority: list[C] | None


def _priority(c: Candidate) -> int:
    return c.config.priority


def _rule(policy: Policy, req: RouteRequest) -> Rule | None:
    for rule in policy.rules:
        if rule.matches(req.card_bin, req.currency, req.amount):
            return rule
    return None


def _rank(rule: Rule | None, name: str) -> int:
    return 0 if rule is None or name in rule.channels else 1


def capability_mismatch(caps: Capabilities, req: RouteRequest) -> str:
    """Why a channel's capabilities do not take a payment ('' when they do)."""
    if req.method not in caps.methods:
        return f"no {req.method.name} payments"
    if req.currency not in caps.currencies:
        return f"no {req.currency}"
    if req.amount < caps.min_amount:
        return f"amount below its minimum {caps.min_amount}"
    if caps.max_amount and req.amount > caps.max_amount:
        return f"amount above its maximum {caps.max_amount}"
    if req.manual_capture and not caps.manual_capture:
        return "no manual capture"
    return ""
