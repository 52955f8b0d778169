"""The [risk] table of the config: amount limits, velocity limits and the anomaly score.

Parsed into frozen dataclasses; every problem is a ConfigError naming the key, for example
`risk.velocity[0].window_s: must be from 1 to 2592000, got 0`. Block lists are not config:
operators manage them through AdminService, and the switches pick them up from Redis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from switch.currency import exponent

RULE_NAME = re.compile(r"^[a-z0-9_]{1,32}\Z")
ACTIONS = ("reject", "review")
SCOPES = ("card", "merchant", "buyer")
MAX_WINDOW_S = 30 * 86_400
# How many buckets a velocity window is counted in (see switch/scripts/claim_authorize.lua).
VELOCITY_BUCKETS = 20


class _Error(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class AmountLimit:
    """Payments above `max_amount_minor` in `currency` (of `merchant`, or of every merchant)."""

    name: str
    currency: str
    max_amount_minor: int
    action: str = "reject"
    merchant: str = ""


@dataclass(frozen=True, slots=True)
class VelocityLimit:
    """At most `max_count` payments and `max_amount_minor` in total per `scope` over `window_s`.

    scope: `card` (per card fingerprint), `buyer` (per wallet buyer: its `buyer_id`, else its
    payment code) or `merchant` (all of the merchant's payments). Zero turns a limit off; an
    amount limit needs a currency, since amounts of different currencies are never added up.
    """

    name: str
    scope: str
    window_s: int
    max_count: int = 0
    max_amount_minor: int = 0
    currency: str = ""
    action: str = "reject"
    merchant: str = ""


@dataclass(frozen=True, slots=True)
class AnomalyRule:
    """Flag a payment whose amount is `threshold` times the recent average (an EWMA with weight
    `alpha`) of its instrument's, or of its merchant's, payments in that currency, once that
    average has `min_history` payments behind it. Threshold 0 turns the rule off."""

    name: str = "anomaly"
    threshold: float = 0.0
    min_history: int = 5
    alpha: float = 0.2
    action: str = "review"
    memory_s: int = 30 * 86_400


@dataclass(frozen=True, slots=True)
class RiskConfig:
    amount_limits: tuple[AmountLimit, ...] = ()
    velocity: tuple[VelocityLimit, ...] = ()
    anomaly: AnomalyRule = field(default_factory=AnomalyRule)
    # A payment held for review and not decided this long after it was held is rejected.
    review_timeout_s: int = 3 * 86_400

    @property
    def empty(self) -> bool:
        return not self.amount_limits and not self.velocity and not self.anomaly.threshold


def parse_risk(raw: Any, merchants: set[str], error: type[ValueError] = _Error) -> RiskConfig:
    """Validate the [risk] table; `merchants` are the configured merchant ids."""
    if raw is None:
        return RiskConfig()
    p = _Parser(error, merchants)
    table = p.table(raw, "risk")
    p.only(table, "risk", {"amount_limits", "velocity", "anomaly", "review_timeout_s"})
    limits = tuple(
        p.amount_limit(x, f"risk.amount_limits[{i}]")
        for i, x in enumerate(p.array(table, "risk.amount_limits"))
    )
    velocity = tuple(
        p.velocity(x, f"risk.velocity[{i}]") for i, x in enumerate(p.array(table, "risk.velocity"))
    )
    anomaly = p.anomaly(table.get("anomaly", {}), "risk.anomaly")
    names = [r.name for r in limits] + [r.name for r in velocity]
    if anomaly.threshold:
        names.append(anomaly.name)
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise error(f"risk: rule name {name!r} is used twice; each rule needs its own name")
        seen.add(name)
    timeout = p.int_in(table, "risk.review_timeout_s", 1, 30 * 86_400, 3 * 86_400)
    return RiskConfig(
        amount_limits=limits, velocity=velocity, anomaly=anomaly, review_timeout_s=timeout
    )


class _Parser:
    def __init__(self, error: type[ValueError], merchants: set[str]) -> None:
        self.error = error
        self.merchants = merchants

    def table(self, raw: Any, where: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.error(f"{where}: must be a table")
        return raw

    def array(self, raw: dict[str, Any], where: str) -> list[Any]:
        value = raw.get(where.rsplit(".", 1)[-1], [])
        if not isinstance(value, list):
            raise self.error(f"{where}: must be an array of tables ([[{where}]])")
        return value

    def only(self, raw: dict[str, Any], where: str, allowed: set[str]) -> None:
        for key in raw:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise self.error(f"{where}.{key}: unknown key (known: {known})")

    def get(self, raw: dict[str, Any], name: str, kind: Any, default: Any) -> Any:
        key = name.rsplit(".", 1)[-1]
        if key not in raw:
            if default is None:
                raise self.error(f"{name}: required")
            return default
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            kinds = kind if isinstance(kind, tuple) else (kind,)
            expected = " or ".join(k.__name__ for k in kinds)
            raise self.error(f"{name}: must be {expected}, got {value!r}")
        return value

    def int_in(self, raw: dict[str, Any], name: str, lo: int, hi: int, default: Any) -> int:
        value = self.get(raw, name, int, default)
        if not lo <= value <= hi:
            raise self.error(f"{name}: must be from {lo} to {hi}, got {value!r}")
        return int(value)

    def common(
        self, raw: dict[str, Any], where: str, action: str, name: str | None = None
    ) -> dict[str, Any]:
        name = self.get(raw, f"{where}.name", str, name)
        if not RULE_NAME.match(name):
            raise self.error(f"{where}.name: must be 1-32 characters of [a-z0-9_], got {name!r}")
        act = self.get(raw, f"{where}.action", str, action)
        if act not in ACTIONS:
            raise self.error(f"{where}.action: must be one of {', '.join(ACTIONS)}, got {act!r}")
        merchant = self.get(raw, f"{where}.merchant", str, "")
        if merchant and merchant not in self.merchants:
            raise self.error(f"{where}.merchant: no merchant {merchant!r} is configured")
        return {"name": name, "action": act, "merchant": merchant}

    def currency(self, raw: dict[str, Any], name: str, required: bool) -> str:
        value = self.get(raw, name, str, None if required else "")
        if (value or required) and exponent(value) is None:
            raise self.error(
                f"{name}: must be an ISO 4217 currency code such as USD, got {value!r}"
            )
        return str(value)

    def amount_limit(self, raw: Any, where: str) -> AmountLimit:
        raw = self.table(raw, where)
        self.only(raw, where, set(AmountLimit.__slots__))
        return AmountLimit(
            **self.common(raw, where, "reject"),
            currency=self.currency(raw, f"{where}.currency", True),
            max_amount_minor=self.int_in(raw, f"{where}.max_amount_minor", 0, 10**15, None),
        )

    def velocity(self, raw: Any, where: str) -> VelocityLimit:
        raw = self.table(raw, where)
        self.only(raw, where, set(VelocityLimit.__slots__))
        scope = self.get(raw, f"{where}.scope", str, None)
        if scope not in SCOPES:
            raise self.error(f"{where}.scope: must be one of {', '.join(SCOPES)}, got {scope!r}")
        rule = VelocityLimit(
            **self.common(raw, where, "reject"),
            scope=scope,
            window_s=self.int_in(raw, f"{where}.window_s", 1, MAX_WINDOW_S, None),
            max_count=self.int_in(raw, f"{where}.max_count", 0, 10**9, 0),
            max_amount_minor=self.int_in(raw, f"{where}.max_amount_minor", 0, 10**15, 0),
            currency=self.currency(raw, f"{where}.currency", False),
        )
        if not rule.max_count and not rule.max_amount_minor:
            raise self.error(f"{where}: set max_count or max_amount_minor (or both)")
        if rule.max_amount_minor and not rule.currency:
            raise self.error(
                f"{where}.currency: required with max_amount_minor (amounts of different "
                "currencies are never added up)"
            )
        return rule

    def anomaly(self, raw: Any, where: str) -> AnomalyRule:
        raw = self.table(raw, where)
        self.only(raw, where, set(AnomalyRule.__slots__))
        common = self.common(raw, where, "review", "anomaly")
        del common["merchant"]
        threshold = float(self.get(raw, f"{where}.threshold", (int, float), 0.0))
        if threshold and not 1.0 < threshold <= 1e6:
            raise self.error(f"{where}.threshold: must be 0 (off) or above 1, got {threshold!r}")
        alpha = float(self.get(raw, f"{where}.alpha", (int, float), 0.2))
        if not 0.0 < alpha <= 1.0:
            raise self.error(f"{where}.alpha: must be above 0 and at most 1, got {alpha!r}")
        return AnomalyRule(
            **common,
            threshold=threshold,
            alpha=alpha,
            min_history=self.int_in(raw, f"{where}.min_history", 1, 10**6, 5),
            memory_s=self.int_in(raw, f"{where}.memory_s", 60, 365 * 86_400, 30 * 86_400),
        )
