"""Risk rules without a network: parsing the [risk] table, and what the engine decides from
memory and asks the claim script to count."""

from __future__ import annotations

import json
import pathlib
import tomllib

import pytest

from switch.cards import Vault
from switch.config import ConfigError, parse
from switch.model import (
    MethodSummary,
    MethodType,
    Payment,
    ReviewState,
    Risk,
    RiskDecision,
    Status,
    from_hash,
    to_hash,
)
from switch.risk import BinRanges, BlockLists, RiskEngine, parse_bin_range
from switch.riskconfig import RiskConfig, parse_risk
from tests.unit.switch.test_config import ENV, GOOD

CARD = MethodSummary(type=MethodType.CARD, card_bin="424242", fingerprint="f" * 64)
WALLET = MethodSummary(type=MethodType.ALIPAY, fingerprint="a" * 64)

RULES = """
[[risk.amount_limits]]
name = "usd_review"
currency = "USD"
max_amount_minor = 1000
action = "review"

[[risk.amount_limits]]
name = "usd_reject"
currency = "USD"
max_amount_minor = 5000

[[risk.velocity]]
name = "card_hourly"
scope = "card"
window_s = 3600
max_count = 5

[[risk.velocity]]
name = "buyer_daily_cny"
scope = "buyer"
window_s = 86400
max_amount_minor = 100000
currency = "CNY"
action = "review"

[[risk.velocity]]
name = "other_merchant"
scope = "merchant"
window_s = 60
max_count = 1
merchant = "m_two"

[risk.anomaly]
threshold = 8
min_history = 4
"""


def risk(text: str) -> RiskConfig:
    return parse_risk(tomllib.loads(text).get("risk"), {"m_one", "m_two"}, ConfigError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[[risk.velocity]]\nname='v'\nscope='card'\nwindow_s=0\nmax_count=1",
            "risk.velocity[0].window_s: must be from 1",
        ),
        ("[risk]\nreview_timeout_s = 0", "risk.review_timeout_s: must be from 1"),
        ("[risk]\nreview_timeout_s = '1h'", "risk.review_timeout_s: must be int"),
        (
            "[[risk.velocity]]\nname='v'\nscope='bin'\nwindow_s=9\nmax_count=1",
            "risk.velocity[0].scope: must be one of",
        ),
        (
            "[[risk.velocity]]\nname='v'\nscope='card'\nwindow_s=9",
            "risk.velocity[0]: set max_count or max_amount_minor",
        ),
        (
            "[[risk.velocity]]\nname='v'\nscope='card'\nwindow_s=9\nmax_amount_minor=5",
            "risk.velocity[0].currency: required",
        ),
        (
            "[[risk.amount_limits]]\nname='a'\ncurrency='XXQ'\nmax_amount_minor=5",
            "risk.amount_limits[0].currency",
        ),
        (
            "[[risk.amount_limits]]\nname='a'\ncurrency='USD'\nmax_amount_minor=5.5",
            "risk.amount_limits[0].max_amount_minor: must be int",
        ),
        (
            "[[risk.amount_limits]]\nname='A b'\ncurrency='USD'\nmax_amount_minor=5",
            "risk.amount_limits[0].name",
        ),
        (
            "[[risk.amount_limits]]\nname='a'\ncurrency='USD'\nmax_amount_minor=5\naction='hold'",
            "risk.amount_limits[0].action",
        ),
        (
            "[[risk.amount_limits]]\nname='a'\ncurrency='USD'\nmax_amount_minor=5\nmerchant='m_x'",
            "risk.amount_limits[0].merchant: no merchant",
        ),
        (
            "[[risk.amount_limits]]\nname='a'\ncurrency='USD'\nmax_amount_minor=5\n[[risk.velocity]]\nname='a'\nscope='card'\nwindow_s=9\nmax_count=1",
            "rule name 'a' is used twice",
        ),
        ("[risk.anomaly]\nthreshold=0.5", "risk.anomaly.threshold"),
        ("[risk.anomaly]\nthreshold=3\nalpha=0", "risk.anomaly.alpha"),
        ("[risk]\nrules=1", "risk.rules: unknown key"),
    ],
)
def test_a_bad_risk_table_is_refused_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        risk(text)
    assert message in str(caught.value)


def test_the_switch_config_carries_the_risk_rules_and_defaults_to_none() -> None:
    plain = parse(tomllib.loads(GOOD), base_dir=pathlib.Path("."), env=ENV)
    assert plain.risk.empty
    with_rules = parse(
        tomllib.loads(GOOD + RULES.replace("m_two", "m_one")), base_dir=pathlib.Path("."), env=ENV
    )
    assert with_rules.risk.velocity[0].name == "card_hourly"
    assert with_rules.risk.anomaly.threshold == 8.0


def test_amount_limits_take_the_most_severe_rule_of_the_currency() -> None:
    engine = RiskEngine(risk(RULES))
    kw = {"merchant": "m_one", "method": CARD}
    assert engine.check(amount=1000, currency="USD", **kw).decision is RiskDecision.ALLOW
    review = engine.check(amount=1001, currency="USD", **kw)
    assert (review.decision, review.rule) == (RiskDecision.REVIEW, "usd_review")
    reject = engine.check(amount=5001, currency="USD", **kw)
    assert (reject.decision, reject.rule) == (RiskDecision.REJECT, "usd_reject")
    assert json.loads(reject.spec)["v"] == [] and reject.keys == ()  # nothing to count
    assert engine.check(amount=9999, currency="EUR", **kw).decision is RiskDecision.ALLOW


def test_velocity_windows_are_chosen_by_scope_merchant_and_currency() -> None:
    engine = RiskEngine(risk(RULES))
    card = engine.check(merchant="m_one", amount=10, currency="EUR", method=CARD)
    spec = json.loads(card.spec)
    assert [w[5] for w in spec["v"]] == ["card_hourly"]
    assert spec["v"][0][:5] == [3_600_000, 180_000, 5, 0, "REJECT"]
    assert card.keys[0] == "ps:{m:m_one}:vel:card_hourly:" + "f" * 64
    # Then the anomaly averages: the instrument's and the merchant's, in that currency.
    assert card.keys[1:] == ("ps:{m:m_one}:avg:EUR:i:" + "f" * 64, "ps:{m:m_one}:avg:EUR:m")
    assert spec["a"][:2] == [8000, 4]

    wallet = engine.check(merchant="m_two", amount=10, currency="CNY", method=WALLET)
    assert [w[5] for w in json.loads(wallet.spec)["v"]] == ["buyer_daily_cny", "other_merchant"]
    assert wallet.keys[1] == "ps:{m:m_two}:vel:other_merchant:all"
    # Every key of one payment is in its merchant's slot, so the claim stays single-slot.
    assert all(k.startswith("ps:{m:m_two}:") for k in wallet.keys)


def test_block_lists_reject_from_memory_before_any_rule() -> None:
    engine = RiskEngine(
        RiskConfig(),
        BlockLists(
            cards=frozenset({"f" * 64}),
            buyers=frozenset({"a" * 64}),
            bins=BinRanges.of([parse_bin_range("51000000-51999999")]),
        ),
    )
    other = MethodSummary(type=MethodType.CARD, fingerprint="e" * 64)
    kw = {"merchant": "m_one", "amount": 1, "currency": "USD"}
    assert engine.check(method=CARD, card_prefix="42424242", **kw).rule == "blocked_card"
    assert engine.check(method=WALLET, **kw).rule == "blocked_buyer"
    assert engine.check(method=other, card_prefix="51234567", **kw).rule == "blocked_bin"
    allowed = engine.check(method=other, card_prefix="52000000", **kw)
    assert allowed.decision is RiskDecision.ALLOW and allowed.spec == ""


def test_bin_ranges_merge_and_match_by_prefix_length() -> None:
    ranges = BinRanges.of(
        [("411100", "411150"), ("411140", "411199"), ("411200", "411200"), ("40000000", "40000009")]
    )
    assert ranges.by_length[0] == (6, ("411100",), ("411200",))
    assert ranges.blocked("4111990000")
    assert ranges.blocked("4112000000")
    assert not ranges.blocked("4112010000")
    assert ranges.blocked("4000000512")
    assert not ranges.blocked("4000001012")
    for bad in ("41", "411111-4111", "411199-411100", "4111x1"):
        with pytest.raises(ValueError):
            parse_bin_range(bad)


def test_a_held_payment_keeps_its_risk_and_sealed_instrument_through_redis_form() -> None:
    vault = Vault(b"k" * 32)
    sealed = vault.seal(b"instrument bytes", "m_one/pay_1")
    p = Payment(
        id="pay_1",
        merchant_id="m_one",
        status=Status.PENDING,
        currency="USD",
        amount=5,
        auto_capture=True,
        method=CARD,
        channel="sandbox",
        create_ms=1,
        update_ms=1,
        risk=Risk(RiskDecision.REVIEW, "usd_review", 2500, ReviewState.HELD),
        vault=sealed,
    )
    back = from_hash(to_hash(p))
    assert back.risk == p.risk and back.vault == sealed
    assert vault.open(back.vault, "m_one/pay_1") == b"instrument bytes"
    assert vault.open(back.vault, "m_one/pay_2") is None  # bound to its payment
    assert Vault(b"x" * 32).open(back.vault, "m_one/pay_1") is None
    assert "rdec" not in to_hash(p.evolve(risk=None))
