"""The consumer counts every journal entry exactly once: across restarts, crashes between
applying and acknowledging, deleted entries and a second consumer on the same group."""

from __future__ import annotations

import pytest

from switch.analytics import MerchantConsumer
from switch.model import Operation, Status
from tests.unit.analytics.journalkit import Crash, FakeJournal, fields

APPROVED_N = "n|sandbox|CARD|USD|AUTHORIZE|APPROVED"
APPROVED_V = "v|sandbox|CARD|USD|AUTHORIZE|APPROVED"


def pay(journal: FakeJournal, n: int, amount: int = 100) -> None:
    for i in range(n):
        journal.add(
            fields(
                Operation.AUTHORIZE,
                Status.CAPTURED,
                pid=f"pay_{len(journal.stream)}_{i}",
                amount=amount,
                authorized=amount,
                captured=amount,
            )
        )


def consumer(journal: FakeJournal, batch: int = 4) -> MerchantConsumer:
    return MerchantConsumer(merchant="m_test", journal=journal, batch=batch)


async def drain(c: MerchantConsumer) -> None:
    while await c.step(block_ms=0):
        pass


async def test_every_entry_is_counted_once_in_batches() -> None:
    j = FakeJournal()
    pay(j, 10, amount=250)
    c = consumer(j)
    await c.resume()
    await drain(c)
    assert j.totals()[APPROVED_N] == 10
    assert j.totals()[APPROVED_V] == 2500
    assert j.pending == {}
    assert j.last == j.stream[-1][0]


async def test_a_crash_between_applying_and_acknowledging_counts_nothing_twice() -> None:
    j = FakeJournal()
    pay(j, 6)
    c = consumer(j)
    await c.resume()
    await c.step(block_ms=0)  # entries 1-4 applied and acknowledged
    j.crash_on_ack = True
    with pytest.raises(Crash):
        await c.step(block_ms=0)  # entries 5-6 applied, never acknowledged
    assert j.totals()[APPROVED_N] == 6
    assert list(j.pending) == ["5-0", "6-0"]

    pay(j, 3)
    restarted = consumer(j)
    await restarted.resume()  # hands back 5-6: already applied, so only acknowledged
    assert j.totals()[APPROVED_N] == 6
    assert j.pending == {}
    await drain(restarted)
    assert j.totals()[APPROVED_N] == 9
    assert j.totals()[APPROVED_V] == 900


async def test_a_crash_before_applying_applies_the_handed_out_entries_on_restart() -> None:
    j = FakeJournal()
    pay(j, 5)
    await j.read_new("m_test", 5, 0)  # handed out to a consumer that died at once
    c = consumer(j)
    await c.resume()
    await drain(c)
    assert j.totals()[APPROVED_N] == 5
    assert j.pending == {}


async def test_an_entry_deleted_while_pending_is_acknowledged_and_not_counted() -> None:
    j = FakeJournal()
    pay(j, 3)
    await j.read_new("m_test", 3, 0)
    del j.stream[1]  # trimmed or deleted from the journal before it was applied
    c = consumer(j)
    await c.resume()
    assert j.totals()[APPROVED_N] == 2
    assert j.pending == {}


async def test_two_consumers_on_one_group_still_count_each_entry_once() -> None:
    # Each is handed a different part of the journal; a batch that is not exactly the entries
    # after the last applied one is refused, and the consumer applies the journal in order.
    j = FakeJournal()
    pay(j, 20)
    a, b = consumer(j, batch=3), consumer(j, batch=2)
    await a.resume()
    await b.resume()
    while await a.step(block_ms=0) + await b.step(block_ms=0):
        pass
    assert j.refused > 0
    assert j.totals()[APPROVED_N] == 20
    assert j.totals()[APPROVED_V] == 2000
    assert j.pending == {}


async def test_an_entry_that_is_not_a_payment_change_is_passed_over() -> None:
    j = FakeJournal()
    pay(j, 1)
    j.add({"note": "not a payment"})
    pay(j, 1)
    c = consumer(j)
    await c.resume()
    await drain(c)
    assert j.totals()[APPROVED_N] == 2
    assert j.last == "3-0"
