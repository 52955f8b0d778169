"""Scenarios: weighted mixes, unique keys, replays of earlier keys, bad and declined requests."""

from __future__ import annotations

from collections import Counter

import pytest

from bench import payloads
from bench.scenarios import (
    AUTHORIZE,
    AUTHORIZE_CAPTURE,
    BAD,
    DECLINE,
    REFUND,
    REPLAY,
    SCENARIOS,
    build_plan,
    parse_mix,
)
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from payswitch.gateway.v1 import payment_pb2


def plan(scenario: str, count: int = 2000, lag: int = 8) -> list[tuple[int, bytes, bytes | None]]:
    return build_plan(
        scenario=parse_mix(scenario), count=count, key_prefix="t-", seed=7, replay_lag=lag
    )


def test_every_fresh_request_has_its_own_idempotency_key() -> None:
    ops = plan("mixed")
    keys = [
        gw.AuthorizeRequest.FromString(req).idempotency_key for op, req, _ in ops if op != REPLAY
    ]
    followups = [gw.CaptureRequest.FromString(f).idempotency_key for _, _, f in ops if f]
    assert len(set(keys)) == len(keys)
    assert not set(keys) & set(followups)
    assert len(set(followups)) == len(followups)


def test_replays_repeat_an_earlier_authorize_byte_for_byte_and_far_enough_back() -> None:
    ops = plan("replay", lag=16)
    position = {req: i for i, (op, req, _) in enumerate(ops) if op == AUTHORIZE}
    replays = [(i, req) for i, (op, req, _) in enumerate(ops) if op == REPLAY]
    assert replays
    for i, req in replays:
        assert req in position
        assert position[req] <= i - 16
    # The first actions of a plan have nothing to repeat yet and go out fresh.
    assert all(op == AUTHORIZE for op, _, _ in ops[:16])


def test_mix_follows_its_weights() -> None:
    counts = Counter(op for op, _, _ in plan("mixed", count=10_000))
    assert counts[AUTHORIZE] > counts[AUTHORIZE_CAPTURE] > counts[REFUND]
    assert 400 <= counts[BAD] <= 600
    assert 400 <= counts[DECLINE] <= 600


def test_requests_carry_the_sandbox_test_cards_and_the_asked_capture_mode() -> None:
    for op, req, followup in plan("mixed", count=300):
        message = gw.AuthorizeRequest.FromString(req)
        card = message.payment_method.card
        if op == DECLINE:
            assert card.number == payloads.DECLINE_CARD
        elif op in (AUTHORIZE, REFUND, REPLAY):
            assert card.number == payloads.APPROVE_CARD
            assert message.capture_mode == payment_pb2.CAPTURE_MODE_AUTOMATIC
        elif op == AUTHORIZE_CAPTURE:
            assert message.capture_mode == payment_pb2.CAPTURE_MODE_MANUAL
            assert followup is not None


def test_bad_requests_are_each_wrong_in_one_field() -> None:
    bad = [gw.AuthorizeRequest.FromString(req) for op, req, _ in plan("bad=1") if op == BAD]
    numbers = {m.payment_method.card.number for m in bad}
    amounts = {m.amount.amount_minor for m in bad}
    assert "4242424242424241" in numbers
    assert 0 in amounts
    assert {m.amount.currency for m in bad} >= {"USD", "ZZZ"}
    assert payment_pb2.CAPTURE_MODE_UNSPECIFIED in {m.capture_mode for m in bad}


def test_parse_mix_knows_names_and_custom_mixes() -> None:
    assert parse_mix("mixed") is SCENARIOS["mixed"]
    custom = parse_mix("authorize=3, decline=1, bad=0")
    assert custom.weights == (("authorize", 3), ("decline", 1))
    assert custom.name == "custom:authorize=3,decline=1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nonsense", "expected a name"),
        ("authorize=x", "not an integer"),
        ("authorize=-1", "negative"),
        ("authorize=0", "every weight is zero"),
        ("teleport=3", "expected a name"),
    ],
)
def test_parse_mix_refuses_bad_mixes(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_mix(text)


def test_same_seed_same_plan() -> None:
    assert plan("mixed", count=500) == plan("mixed", count=500)
