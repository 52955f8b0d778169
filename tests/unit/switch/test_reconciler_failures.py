"""A payment whose resolution keeps failing is logged now and then, not every time, and many
failing payments no more than a few times a minute in all; one merchant's or one held payment's
failure does not stop the others; a Redis that is away still ends the reconciler's round."""

from __future__ import annotations

import logging

import pytest

from switch.config import ReconcilerConfig
from switch.errors import StoreUnavailable
from switch.model import Payment
from switch.reconciler import FAILURE_LOG_EVERY, FAILURE_LOGS_PER_MINUTE, Reconciler


class _Store:
    """The store seam: `due` payments due in each merchant and `held` held for review in each,
    none of whose records can be read; `lease_error` fails leasing one merchant's."""

    def __init__(
        self, error: Exception, *, due: int = 1, held: int = 0, lease_error: str = ""
    ) -> None:
        self.error = error
        self.due, self.held, self.lease_error = due, held, lease_error
        self.leased: list[str] = []
        self.swept: list[str] = []
        self.round = 0

    async def lease_due(self, merchant: str, *, lease_ms: int, batch: int) -> list[str]:
        self.leased.append(merchant)
        if merchant == self.lease_error:
            raise ValueError("bad score in the pending set")
        # New payments each round when many are due, as leases of failing ones run out.
        first = self.round * self.due if self.due > 1 else 0
        return [f"pay_{merchant}_{i}" for i in range(first, first + self.due)]

    async def get(self, merchant: str, payment_id: str) -> Payment | None:
        raise self.error

    async def held_before(self, merchant: str, before_ms: int, batch: int) -> list[str]:
        self.swept.append(merchant)
        return [f"held_{merchant}_{i}" for i in range(self.held)]


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _reconciler(store: _Store, clock: _Clock | None = None) -> Reconciler:
    return Reconciler(
        store=store,  # type: ignore[arg-type]
        pool=None,  # type: ignore[arg-type]  # never reached: no record is readable
        payments=None,  # type: ignore[arg-type]
        merchants=["m_1", "m_2"],
        config=ReconcilerConfig(),
        metrics=None,  # type: ignore[arg-type]
        clock=clock or _Clock(),
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
    assert store.swept[:2] == ["m_1", "m_2"], "the review sweep ran"
    logged = [(r.pid, r.failures) for r in caplog.records]  # type: ignore[attr-defined]
    every = (1, FAILURE_LOG_EVERY + 1, 2 * FAILURE_LOG_EVERY + 1)
    assert sorted(logged) == [(pid, n) for pid in ("pay_m_1_0", "pay_m_2_0") for n in every]
    assert all(str(r.exc_info[1]) == "unexpected end of a record" for r in caplog.records)  # type: ignore[index]


async def test_a_redis_that_is_away_still_ends_the_round() -> None:
    store = _Store(StoreUnavailable("the payment store (Redis) is unavailable"))
    with pytest.raises(StoreUnavailable):
        await _reconciler(store).run_once()
    assert store.leased == ["m_1"] and store.swept == []


async def test_many_failing_payments_are_logged_a_few_times_a_minute_and_then_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = _Store(ValueError("a record of a newer release"), due=50)
    clock = _Clock()
    reconciler = _reconciler(store, clock)
    with caplog.at_level(logging.ERROR, logger="payswitch.reconciler"):
        for store.round in range(4):  # 400 payments failing for the first time, in 30 s
            await reconciler.run_once()
            clock.now += 10
        assert len(caplog.records) == FAILURE_LOGS_PER_MINUTE, "not one per failing payment"
        clock.now += 30  # a minute after the first: 100 more fail for the first time
        store.round = 4
        await reconciler.run_once()
    assert len(caplog.records) == 2 * FAILURE_LOGS_PER_MINUTE
    # The first of the new minute says how many went unsaid.
    assert caplog.records[FAILURE_LOGS_PER_MINUTE].failures_not_logged == 390  # type: ignore[attr-defined]


async def test_one_merchant_or_held_payment_that_fails_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = _Store(ValueError("unexpected end of a record"), held=2, lease_error="m_1")
    with caplog.at_level(logging.ERROR, logger="payswitch.reconciler"):
        assert await _reconciler(store).run_once() == 1  # m_2's due payment
    assert store.leased == ["m_1", "m_2"]
    assert store.swept == ["m_1", "m_2"], "every merchant's reviews are swept"
    failed = sorted(r.pid for r in caplog.records)  # type: ignore[attr-defined]
    assert failed == ["", "held_m_1_0", "held_m_1_1", "held_m_2_0", "held_m_2_1", "pay_m_2_0"]
