"""The payment record: immutable values whose copies and hash form keep every field."""

from __future__ import annotations

import dataclasses

import pytest

from switch.model import (
    ChannelResult,
    Decline,
    Event,
    MethodSummary,
    MethodType,
    Operation,
    Outcome,
    Payment,
    Risk,
    RiskDecision,
    Status,
    from_hash,
    to_hash,
)


def payment(**changes: object) -> Payment:
    base = Payment(
        id="pay_1",
        merchant_id="m_1",
        status=Status.PENDING,
        currency="USD",
        amount=1000,
        auto_capture=True,
        method=MethodSummary(MethodType.CARD, "424242", "4242", 12, 2030, "f" * 64),
        channel="sandbox",
        create_ms=1,
        update_ms=2,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_records_stay_frozen() -> None:
    p = payment()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.status = Status.CAPTURED  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ChannelResult(Outcome.APPROVED).outcome = Outcome.DECLINED  # type: ignore[misc]
    # Copies and results are built as a plain twin class and then become the frozen one.
    copied = p.evolve(version=4)
    timed = ChannelResult(Outcome.APPROVED).timed(5)
    assert (type(copied), type(timed), type(Event(Operation.VOID, Status.VOIDED, 1, "r", 2))) == (
        Payment,
        ChannelResult,
        Event,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        copied.version = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        timed.latency_us = 6  # type: ignore[misc]
    assert hash(Decline(51, "51", "no")) == hash(Decline(51, "51", "no"))
    # A subclass would be built as the base class: refused where it is declared.
    with pytest.raises(TypeError, match="cannot be subclassed"):
        type("Special", (Event,), {"__slots__": ()})


def test_defaults_and_required_fields_are_those_declared() -> None:
    p = payment()
    assert (p.version, p.events, p.risk, p.vault, p.decline) == (0, (), None, "", None)
    with pytest.raises(TypeError, match="merchant_id"):
        Payment(id="pay_1")  # type: ignore[call-arg]
    assert Event(Operation.AUTHORIZE, Status.CAPTURED, 5, "r", 9).decline is None
    assert Risk(RiskDecision.ALLOW) == Risk(RiskDecision.ALLOW, "", 0, None)


def test_evolve_copies_every_field_but_the_changed_ones() -> None:
    p = payment(risk=Risk(RiskDecision.REVIEW, "r1", 250), decline=Decline(51, "51", "no"))
    q = p.evolve(status=Status.DECLINED, version=3)
    assert q == dataclasses.replace(p, status=Status.DECLINED, version=3)
    assert p.status is Status.PENDING and p.version == 0  # the original is untouched
    with pytest.raises(TypeError, match="no field colour"):
        p.evolve(colour="red")


def test_hash_form_round_trips() -> None:
    p = payment(
        status=Status.CAPTURED,
        authorized=1000,
        captured=1000,
        events=(Event(Operation.AUTHORIZE, Status.CAPTURED, 1000, "m_1-pay_1", 3),),
        risk=Risk(RiskDecision.ALLOW, "", 120),
        pending_op=Operation.CAPTURE,
        version=2,
    )
    assert from_hash(to_hash(p)) == p
