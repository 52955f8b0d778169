"""A payment whose resolution keeps failing is logged now and then, not every time; a Redis that
is away still ends the reconciler's round."""

from __future__ import annotations

import logging

import pytest

from switch.config import ReconcilerConfig
from switch.errors import StoreUnavailable
from switch.model import Payment
from switch.reconciler import FAILURE_LOG_EVERY, Reconciler


class _Store:
    """The store seam: one due payment in each merchant, whose record cannot be read."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.leased: list[str] = []
        self.swept = 0

    async def lease_due(self, merchant: str, *, lease_ms: int, batch: int) -> list[str]:
        self.leased.append(merchant)
        return [f"pay_{merchant}"]

    async def get(self, merchant: str, payment_id: str) -> Payment | None:
        raise self.error

    async def held_before(self, merchant: str, before_ms: int, batch: int) -> list[str]:
        self.swept += 1
        return []


def _reconciler(store: _Store) -> Reconciler:
    return Reconciler(
        store=store,  # type: ignore[arg-type]
        pool=None,  # type: ignore[arg-type]  # never reached: no record is readable
        payments=None,  # type: ignore[arg-type]
        merchants=["m_1", "m_2"],
        config=ReconcilerConfig(),
        metrics=None,  # type: ignore[arg-type]
    )


async def test_a_payment_that_always_fails_is_logged_first_and_every_nth_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = _Store(ValueError("unexpected end of a record"))
    reconciler = _reconciler(store)
    rounds = 2 * FAILURE_LOG_EVERY + 1
    with caplog.at_level(logging.ERROR, logger="payswitch.reconciler"):
        for _ in range(rounds):
            assert await reconciler.run_once() == 2
    assert store.leased == ["m_1", "m_2"] * rounds, "every merchant is looked at every round"
    assert store.swept >= 2, "the review sweep ran"
    logged = [(r.pid, r.failures) for r in caplog.records]  # type: ignore[attr-defined]
    every = (1, FAILURE_LOG_EVERY + 1, 2 * FAILURE_LOG_EVERY + 1)
    assert sorted(logged) == [(pid, n) for pid in ("pay_m_1", "pay_m_2") for n in every]
    assert all(str(r.exc_info[1]) == "unexpected end of a record" for r in caplog.records)  # type: ignore[index]


async def test_a_redis_that_is_away_still_ends_the_round() -> None:
    store = _Store(StoreUnavailable("the payment store (Redis) is unavailable"))
    with pytest.raises(StoreUnavailable):
        await _reconciler(store).run_once()
    assert store.leased == ["m_1"] and store.swept == 0
