"""Routing order: capabilities, rules, priority, rates, fees, weights, health - with fakes."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import pytest

from switch.config import ChannelConfig
from switch.errors import ChannelUnavailable, NoRoute
from switch.model import MethodType
from switch.pool import Capabilities
from switch.routeconfig import BinRange, Fee, RoutingConfig, Rule
from switch.routing import Router, RouteRequest

CARD_USD = Capabilities(
    methods=frozenset({MethodType.CARD}),
    currencies=frozenset({"USD"}),
    min_amount=1,
    max_amount=10_000,
    manual_capture=True,
    partial_capture=True,
    void=True,
    refund=True,
    partial_refund=True,
)


@dataclass
class FakeChannel:
    config: ChannelConfig
    capabilities: Capabilities | None = CARD_USD
    up: bool = True

    @property
    def name(self) -> str:
        return self.config.name

    def available(self) -> bool:
        return self.up


def chan(name: str, priority: int = 100, weight: int = 100, **kw: object) -> FakeChannel:
    return FakeChannel(
        config=ChannelConfig(name=name, endpoints=("x:1",), priority=priority, weight=weight), **kw
    )  # type: ignore[arg-type]


REQ = RouteRequest(method=MethodType.CARD, currency="USD", amount=500, manual_capture=False)


def names(chans: list[FakeChannel]) -> list[str]:
    return [c.name for c in chans]


def test_lower_priority_numbers_come_first():
    router = Router([chan("b", priority=20), chan("a", priority=10), chan("c", priority=30)])
    assert names(router.candidates(REQ)) == ["a", "b", "c"]


def test_only_matching_channels_are_candidates():
    wallet = Capabilities(
        **{
            "methods": frozenset({MethodType.ALIPAY}),
            "currencies": frozenset({"CNY"}),
            "min_amount": 1,
            "max_amount": 0,
            "manual_capture": False,
            "partial_capture": False,
            "void": True,
            "refund": True,
            "partial_refund": True,
        }
    )
    router = Router([chan("card"), chan("wallet", capabilities=wallet)])
    assert names(router.candidates(REQ)) == ["card"]
    big = RouteRequest(method=MethodType.CARD, currency="USD", amount=10_001, manual_capture=False)
    with pytest.raises(NoRoute):
        router.candidates(big)
    with pytest.raises(NoRoute):
        router.candidates(
            RouteRequest(method=MethodType.CARD, currency="EUR", amount=5, manual_capture=False)
        )
    with pytest.raises(NoRoute):
        Router([chan("wallet", capabilities=wallet)]).candidates(
            RouteRequest(method=MethodType.ALIPAY, currency="CNY", amount=5, manual_capture=True)
        )


def test_unhealthy_channels_are_skipped_and_all_down_is_unavailable():
    router = Router([chan("a", priority=1, up=False), chan("b", priority=2)])
    assert names(router.candidates(REQ)) == ["b"]
    with pytest.raises(ChannelUnavailable):
        Router([chan("a", up=False)]).candidates(REQ)


def test_channels_not_yet_described_make_the_switch_unavailable_not_routeless():
    with pytest.raises(ChannelUnavailable):
        Router([chan("a", capabilities=None)]).candidates(REQ)


def test_priority_decides_before_strategy_and_weight():
    # One channel per priority: rates, exploration and weights never reorder them.
    router = Router(
        [chan("backup", priority=20, weight=10_000), chan("main", priority=10, weight=1)],
        routing=routing(strategy="success_rate", exploration=0.5),
        rates=FakeRates(main=0.05, backup=1.0),
        rng=random.Random(5),
    )
    assert {tuple(names(router.candidates(REQ))) for _ in range(500)} == {("main", "backup")}


def test_weights_share_traffic_among_equal_priorities():
    router = Router([chan("heavy", weight=300), chan("light", weight=100)], rng=random.Random(7))
    firsts = Counter(router.candidates(REQ)[0].name for _ in range(4000))
    share = firsts["heavy"] / 4000
    assert 0.70 < share < 0.80  # 300 / (300 + 100) = 0.75


# --- strategies, rules, explain ---------------------------------------------------------------


class FakeRates:
    """Approval rates as a test sets them; None: below the sample minimum."""

    def __init__(self, **rates: float | None) -> None:
        self.rates = rates

    def rate(self, channel: str) -> float | None:
        return self.rates.get(channel)

    def counts(self, channel: str) -> tuple[int, int]:
        rate = self.rates.get(channel)
        return (0, 0) if rate is None else (round(rate * 100), 100)


def routing(**kw: object) -> RoutingConfig:
    return RoutingConfig(**{"exploration": 0.0, **kw})  # type: ignore[arg-type]


def test_success_rate_puts_the_better_channel_first_within_a_priority():
    rates = FakeRates(good=0.97, poor=0.40, backup=1.0)
    router = Router(
        [chan("poor"), chan("good"), chan("backup", priority=200)],
        routing=routing(strategy="success_rate"),
        rates=rates,
    )
    for _ in range(50):
        assert names(router.candidates(REQ)) == ["good", "poor", "backup"]
    rates.rates["poor"] = None  # too few samples in the window: tried as if perfect
    assert names(router.candidates(REQ))[0] == "poor"


def test_exploration_sends_a_share_of_payments_past_the_rates():
    router = Router(
        [chan("good"), chan("poor")],
        routing=routing(strategy="success_rate", exploration=0.2),
        rates=FakeRates(good=0.99, poor=0.10),
        rng=random.Random(3),
    )
    firsts = Counter(router.candidates(REQ)[0].name for _ in range(4000))
    assert 0.06 < firsts["poor"] / 4000 < 0.14  # half of the 20% explored


def test_least_cost_puts_the_cheaper_channel_first_and_unpriced_ones_last():
    fees = (
        Fee(channel="dear", currency="USD", percent_bp=290, fixed_minor=30),
        Fee(channel="cheap", currency="USD", percent_bp=150, fixed_minor=25),
        Fee(channel="cheap", currency="EUR", percent_bp=900, fixed_minor=0),
    )
    router = Router(
        [chan("unpriced"), chan("dear"), chan("cheap")],
        routing=routing(strategy="least_cost", fees=fees),
    )
    assert names(router.candidates(REQ)) == ["cheap", "dear", "unpriced"]
    # A fixed fee weighs most on small amounts: the order flips with the amount.
    fees2 = (
        Fee(channel="dear", currency="USD", percent_bp=290, fixed_minor=0),
        Fee(channel="cheap", currency="USD", percent_bp=100, fixed_minor=100),
    )
    router.reconfigure(routing(strategy="least_cost", fees=fees2))
    assert names(router.candidates(REQ))[:2] == ["dear", "cheap"]  # 15 < 105 on 500
    big = RouteRequest(method=MethodType.CARD, currency="USD", amount=10_000, manual_capture=False)
    assert names(router.candidates(big))[:2] == ["cheap", "dear"]  # 200 < 290


def test_fees_are_integer_minor_units_rounded_half_up():
    fee = Fee(channel="a", currency="USD", percent_bp=290, fixed_minor=30)
    assert fee.cost(1000) == 59  # 29 + 30
    assert fee.cost(1) == 30  # 0.029 rounds to 0
    assert fee.cost(50) == 31  # 1.45 rounds to 1
    assert fee.cost(10**15) == 29 * 10**12 + 30  # no float anywhere
    assert Fee(channel="a", currency="USD", percent_bp=50).cost(100) == 1  # 0.5 rounds up


def test_a_bin_rule_pins_its_range_to_a_channel():
    rule = Rule(name="bank_x", channels=("b",), bins=(BinRange("411111", "411199"),))
    router = Router([chan("a", priority=1), chan("b", priority=2)], routing=routing(rules=(rule,)))
    pinned = RouteRequest(
        method=MethodType.CARD, currency="USD", amount=500, manual_capture=False, card_bin="411150"
    )
    other = RouteRequest(
        method=MethodType.CARD, currency="USD", amount=500, manual_capture=False, card_bin="424242"
    )
    assert names(router.candidates(pinned)) == ["b"]
    assert names(router.candidates(other)) == ["a", "b"]
    with pytest.raises(ChannelUnavailable):
        Router([chan("a"), chan("b", up=False)], routing=routing(rules=(rule,))).candidates(pinned)


def test_a_prefer_rule_by_currency_and_amount_puts_its_channels_first():
    rule = Rule(
        name="big_usd",
        channels=("b",),
        mode="prefer",
        currencies=frozenset({"USD"}),
        min_amount=1000,
    )
    router = Router([chan("a", priority=1), chan("b", priority=2)], routing=routing(rules=(rule,)))
    big = RouteRequest(method=MethodType.CARD, currency="USD", amount=5000, manual_capture=False)
    assert names(router.candidates(big)) == ["b", "a"]
    assert names(router.candidates(REQ)) == ["a", "b"]  # 500 is below the rule's minimum


def test_an_only_rule_whose_channels_cannot_take_the_payment_is_no_route():
    rule = Rule(name="eur_only", channels=("wallet",), currencies=frozenset({"USD"}))
    router = Router([chan("a"), chan("wallet", capabilities=None)], routing=routing(rules=(rule,)))
    with pytest.raises(NoRoute, match="eur_only"):
        router.candidates(REQ)


def test_cascading_is_allowed_only_for_configured_codes_and_up_to_the_limit():
    router = Router(
        [chan("a")], routing=routing(cascade_decline_codes=frozenset({12}), max_cascades=1)
    )
    assert router.cascades_after(12, 0)
    assert not router.cascades_after(12, 1)
    assert not router.cascades_after(1, 0)
    assert not Router([chan("a")]).cascades_after(12, 0)  # the default: never


def test_explain_says_which_channels_match_in_which_order_and_why():
    euro_only = Capabilities(
        methods=frozenset({MethodType.CARD}),
        currencies=frozenset({"EUR"}),
        min_amount=1,
        max_amount=0,
        manual_capture=True,
        partial_capture=True,
        void=True,
        refund=True,
        partial_refund=True,
    )
    router = Router(
        [
            chan("down", up=False),
            chan("euro", capabilities=euro_only),
            chan("dear"),
            chan("cheap"),
            chan("backup", priority=200),
        ],
        routing=routing(
            strategy="least_cost",
            fees=(
                Fee(channel="dear", currency="USD", percent_bp=300),
                Fee(channel="cheap", currency="USD", percent_bp=100),
            ),
        ),
        rates=FakeRates(cheap=0.5),
    )
    rows = {r.channel: r for r in router.explain(REQ)}
    assert [r.channel for r in router.explain(REQ)][:3] == ["cheap", "dear", "backup"]
    assert rows["cheap"].position == 1 and rows["dear"].position == 2
    assert any("fee 5 minor units" in why for why in rows["cheap"].reasons)
    assert any("approval 50%" in why for why in rows["cheap"].reasons)
    assert rows["euro"].position is None
    assert rows["euro"].reasons == ["capability mismatch: no USD"]
    assert rows["down"].position is None
    assert "unavailable" in rows["down"].reasons[-1]
    assert any("no fee configured for USD" in why for why in rows["backup"].reasons)
