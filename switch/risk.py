"""The risk rules engine: block lists and amount limits from memory, velocity and anomaly in Redis.

Per payment, `RiskEngine.check` decides what can be decided from memory (block lists, amount
limits) and prepares what needs shared counters (velocity limits, the anomaly score) for the
claim script, which counts them in the same round trip as the idempotency claim
(switch/scripts/claim_authorize.lua). The script answers the final decision: the most severe of
the two, REJECT over REVIEW over ALLOW; on a tie the first rule in config order names it.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from switch.model import (
    METHOD_CARD,
    RISK_ALLOW,
    RISK_REJECT,
    MethodSummary,
    RiskDecision,
    fast_frozen,
)
from switch.riskconfig import VELOCITY_BUCKETS, RiskConfig

# The rule names a block-list hit is recorded under.
BLOCKED_CARD = "blocked_card"
BLOCKED_BIN = "blocked_bin"
BLOCKED_BUYER = "blocked_buyer"

_BIN_RANGE = re.compile(r"^([0-9]{6,8})(?:-([0-9]{6,8}))?\Z")
FINGERPRINT = re.compile(r"^[0-9a-f]{64}\Z")


def parse_bin_range(text: str) -> tuple[str, str]:
    """'411111' or '411100-411199' (6 to 8 digits, both ends of one length, inclusive)."""
    m = _BIN_RANGE.match(text)
    if m is None:
        raise ValueError("must be a BIN (6 to 8 digits) or a range of two, like 411100-411199")
    lo, hi = m.group(1), m.group(2) or m.group(1)
    if len(lo) != len(hi) or lo > hi:
        raise ValueError("a range's two ends must have the same number of digits, low first")
    return lo, hi


@dataclass(frozen=True, slots=True)
class BinRanges:
    """Blocked BIN ranges, merged and sorted per prefix length, so a lookup is a bisection."""

    by_length: tuple[tuple[int, tuple[str, ...], tuple[str, ...]], ...] = ()

    @classmethod
    def of(cls, ranges: Iterable[tuple[str, str]]) -> BinRanges:
        grouped: dict[int, list[tuple[str, str]]] = {}
        for lo, hi in ranges:
            grouped.setdefault(len(lo), []).append((lo, hi))
        out = []
        for length, items in sorted(grouped.items()):
            merged: list[list[str]] = []
            for lo, hi in sorted(items):
                if merged and int(lo) <= int(merged[-1][1]) + 1:
                    merged[-1][1] = max(merged[-1][1], hi)
                else:
                    merged.append([lo, hi])
            out.append((length, tuple(m[0] for m in merged), tuple(m[1] for m in merged)))
        return cls(tuple(out))

    def blocked(self, card_prefix: str) -> bool:
        for length, los, his in self.by_length:
            prefix = card_prefix[:length]
            i = bisect.bisect_right(los, prefix) - 1
            if i >= 0 and prefix <= his[i] and len(prefix) == length:
                return True
        return False


@dataclass(frozen=True, slots=True)
class BlockLists:
    """The block lists as one switch holds them: fingerprints and BIN ranges."""

    cards: frozenset[str] = frozenset()
    buyers: frozenset[str] = frozenset()
    bins: BinRanges = field(default_factory=BinRanges)
    version: int = 0


@dataclass(frozen=True, slots=True)
class Check:
    """The in-memory verdict, and what the claim script counts (`spec`, '' for nothing) under
    which keys (velocity windows, then the anomaly averages)."""

    decision: RiskDecision
    rule: str = ""
    spec: str = ""
    keys: tuple[str, ...] = ()


fast_frozen(Check)  # one per payment under rules: built the way Payment is (see switch/model.py)
ALLOW = Check(RISK_ALLOW)


def velocity_key(merchant: str, rule: str, identity: str) -> str:
    return f"ps:{{m:{merchant}}}:vel:{rule}:{identity}"


def average_key(merchant: str, currency: str, instrument: str = "") -> str:
    """The anomaly score's average of one instrument, or of the merchant when none is given."""
    who = f"i:{instrument}" if instrument else "m"
    return f"ps:{{m:{merchant}}}:avg:{currency}:{who}"


class RiskEngine:
    """Holds the rules and block lists; both are replaced whole (a reload, a block-list sync)
    and read without locks, since the event loop runs one check at a time."""

    def __init__(self, config: RiskConfig, blocks: BlockLists | None = None) -> None:
        self._cfg = config
        self.blocks = blocks or BlockLists()

    @property
    def config(self) -> RiskConfig:
        return self._cfg

    def update(self, config: RiskConfig) -> None:
        self._cfg = config

    def check(
        self,
        *,
        merchant: str,
        amount: int,
        currency: str,
        method: MethodSummary,
        card_prefix: str = "",
    ) -> Check:
        """The verdict from memory and the counting the claim script is to do."""
        cfg, blocks = self._cfg, self.blocks
        card = method.type is METHOD_CARD
        fp = method.fingerprint
        if card and fp in blocks.cards:
            return Check(RISK_REJECT, BLOCKED_CARD, _spec(amount, "REJECT", BLOCKED_CARD))
        if card and blocks.bins.by_length and blocks.bins.blocked(card_prefix):
            return Check(RISK_REJECT, BLOCKED_BIN, _spec(amount, "REJECT", BLOCKED_BIN))
        if not card and fp in blocks.buyers:
            return Check(RISK_REJECT, BLOCKED_BUYER, _spec(amount, "REJECT", BLOCKED_BUYER))
        if cfg.empty:
            return ALLOW
        decision, rule = RISK_ALLOW, ""
        for lim in cfg.amount_limits:
            if (
                amount > lim.max_amount_minor
                and lim.currency == currency
                and lim.merchant in ("", merchant)
            ):
                found = RiskDecision[lim.action.upper()]
                if found.value > decision.value:
                    decision, rule = found, lim.name
        if decision is RISK_REJECT:
            return Check(decision, rule, _spec(amount, "REJECT", rule))
        keys: list[str] = []
        windows: list[list[object]] = []
        for v in cfg.velocity:
            if v.merchant not in ("", merchant) or v.currency not in ("", currency):
                continue
            if v.scope == "merchant":
                identity = "all"
            elif (v.scope == "card") == card and fp:
                identity = fp
            else:
                continue
            keys.append(velocity_key(merchant, v.name, identity))
            window_ms = v.window_s * 1000
            windows.append(
                [
                    window_ms,
                    max(1, window_ms // VELOCITY_BUCKETS),
                    v.max_count,
                    v.max_amount_minor,
                    v.action.upper(),
                    v.name,
                ]
            )
        body: dict[str, object] = {"amt": str(amount), "d": decision.name, "r": rule, "v": windows}
        a = cfg.anomaly
        if a.threshold:
            keys.append(average_key(merchant, currency, fp))
            keys.append(average_key(merchant, currency))
            body["a"] = [
                int(a.threshold * 1000),
                a.min_history,
                a.alpha,
                a.action.upper(),
                a.memory_s,
                a.name,
            ]
        return Check(decision, rule, json.dumps(body, separators=(",", ":")), tuple(keys))


def _spec(amount: int, decision: str, rule: str) -> str:
    return json.dumps(
        {"amt": str(amount), "d": decision, "r": rule, "v": []}, separators=(",", ":")
    )
