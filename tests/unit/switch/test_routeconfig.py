"""The [routing] table: defaults keep today's behaviour; a bad entry names its key."""

from __future__ import annotations

import pytest

from switch.config import ConfigError
from switch.routeconfig import BinRange, RoutingConfig, parse_routing
from switch.routestate import merge

CHANNELS = ["a", "b"]


def test_an_empty_table_is_plain_priority_routing_without_cascades():
    cfg = parse_routing({}, CHANNELS)
    assert cfg == RoutingConfig()
    assert cfg.strategy == "priority" and not cfg.cascade_decline_codes and not cfg.rules


def test_a_full_table_parses():
    cfg = parse_routing(
        {
            "strategy": "success_rate",
            "exploration": 0.1,
            "success_window_s": 60,
            "cascade_decline_codes": ["issuer_unavailable", "PROCESSING_ERROR"],
            "breaker": {"failures": 2, "cooldown_ms": 500},
            "fees": [{"channel": "a", "currency": "USD", "percent_bp": 290, "fixed_minor": 30}],
            "rules": [{"name": "r1", "bins": ["4111-4112", "5"], "channels": ["b"]}],
        },
        CHANNELS,
    )
    assert cfg.cascade_decline_codes == frozenset({12, 13})
    assert cfg.breaker.failures == 2
    assert cfg.fees[0].cost(1000) == 59
    assert cfg.rules[0].bins == (BinRange("4111", "4112"), BinRange("5", "5"))
    assert cfg.rules[0].matches("411250", "USD", 1) and cfg.rules[0].matches("555555", "EUR", 1)
    assert not cfg.rules[0].matches("411350", "USD", 1) and not cfg.rules[0].matches("", "USD", 1)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"strategy": "cheapest"}, "routing.strategy: must be one of priority"),
        ({"exploration": 0.9}, "routing.exploration: must be from 0 to 0.5"),
        ({"colour": 1}, "routing.colour: unknown key"),
        (
            {"cascade_decline_codes": ["nope"]},
            "routing.cascade_decline_codes[0]: must be a decline",
        ),
        ({"breaker": {"failures": -1}}, "routing.breaker.failures: must be from 0"),
        ({"fees": [{"channel": "zz", "currency": "USD"}]}, "routing.fees[0].channel: no channel"),
        ({"fees": [{"channel": "a", "currency": "usd"}]}, "routing.fees[0].currency: must be an"),
        (
            {"fees": [{"channel": "a", "currency": "USD", "percent_bp": 2.5}]},
            "percent_bp: must be int",
        ),
        (
            {"fees": [{"channel": "a", "currency": "USD"}, {"channel": "a", "currency": "USD"}]},
            "routing.fees[1]: a second fee for a in USD",
        ),
        ({"rules": [{"name": "r", "channels": []}]}, "routing.rules[0].channels: must name"),
        ({"rules": [{"name": "r", "channels": ["c"]}]}, "routing.rules[0].channels[0]: no channel"),
        (
            {"rules": [{"name": "r", "channels": ["a"], "bins": ["49-40"]}]},
            "routing.rules[0].bins[0]: must be a BIN prefix",
        ),
        (
            {"rules": [{"name": "r", "channels": ["a"], "mode": "maybe"}]},
            "routing.rules[0].mode: must be one of only, prefer",
        ),
        (
            {"rules": [{"name": "r", "channels": ["a"], "min_amount": 5, "max_amount": 4}]},
            "routing.rules[0].max_amount",
        ),
        (
            {"rules": [{"name": "r", "channels": ["a"]}, {"name": "r", "channels": ["b"]}]},
            "routing.rules[1].name: duplicate",
        ),
    ],
)
def test_a_bad_entry_names_its_key(raw, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_routing(raw, CHANNELS)


def test_rate_buckets_outside_the_window_are_left_out_and_marked_for_deletion():
    fields = {b"100:a": b"9", b"100:n": b"10", b"95:a": b"1", b"95:n": b"5", b"90:n": b"7"}
    approved, total, stale = merge(fields, now_bucket=100)
    assert (approved, total) == (10, 15)
    assert stale == ["90:n"]
