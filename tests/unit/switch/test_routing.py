"""Routing order: capabilities, priority, weights, health - with hand-written channel fakes."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import pytest

from switch.config import ChannelConfig
from switch.errors import ChannelUnavailable, NoRoute
from switch.model import MethodType
from switch.pool import Capabilities
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


def test_weights_share_traffic_among_equal_priorities():
    router = Router([chan("heavy", weight=300), chan("light", weight=100)], rng=random.Random(7))
    firsts = Counter(router.candidates(REQ)[0].name for _ in range(4000))
    share = firsts["heavy"] / 4000
    assert 0.70 < share < 0.80  # 300 / (300 + 100) = 0.75
