"""Journal entries as the switch writes them (switch.records.journal_entry), and a fake journal.

The fake keeps the Journal seam's contract in memory: a stream, one consumer group with its
pending list, and an apply that refuses a batch unless it is exactly the entries after the last
applied one. It lets the consumer's restart and ordering logic be tested without Redis; the
integration tests check the same behaviour against a real redis-server.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from switch.analytics import Increments, Raw, after
from switch.model import (
    Decline,
    MethodSummary,
    MethodType,
    Operation,
    Payment,
    Status,
    fields_dict,
)
from switch.records import journal_entry

MINUTE = 29_833_334  # a unix minute in late 2026
T0_MS = MINUTE * 60_000


def fields(
    op: Operation,
    status: Status,
    *,
    pid: str = "pay_1",
    amount: int = 1000,
    currency: str = "USD",
    authorized: int = 0,
    captured: int = 0,
    refunded: int = 0,
    channel: str = "sandbox",
    method: MethodType = MethodType.CARD,
    t_ms: int = T0_MS,
    decline: int | None = None,
    latency_us: int | None = None,
) -> dict[str, str]:
    """The fields the switch journals for one change of a payment."""
    p = Payment(
        id=pid,
        merchant_id="m_test",
        status=status,
        currency=currency,
        amount=amount,
        auto_capture=True,
        method=MethodSummary(type=method),
        channel=channel,
        create_ms=t_ms,
        update_ms=t_ms,
        authorized=authorized,
        captured=captured,
        refunded=refunded,
        decline=Decline(code=decline) if decline is not None else None,
        version=1,
    )
    return fields_dict(journal_entry(p, op, latency_us))


class Crash(Exception):
    """Stands for the consumer's process dying at a chosen point."""


class FakeJournal:
    """One merchant's journal, consumer group and aggregates, in memory."""

    def __init__(self) -> None:
        self.stream: list[Raw] = []
        self.delivered = 0  # the group's cursor: entries handed out so far
        self.pending: dict[str, None] = {}  # ids handed out and not acknowledged, in order
        self.last = ""
        self.counters: dict[int, Counter[str]] = {}
        self.refunded: dict[str, int] = {}
        self.crash_on_ack = False
        self.refused = 0

    def add(self, entry: dict[str, str]) -> str:
        entry_id = f"{len(self.stream) + 1}-0"
        self.stream.append((entry_id, entry))
        return entry_id

    def totals(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for c in self.counters.values():
            out.update(c)
        return out

    async def ensure_group(self, merchant: str) -> None:
        pass

    async def read_pending(self, merchant: str, count: int) -> list[Raw]:
        present = dict(self.stream)
        return [(i, present.get(i, {})) for i in list(self.pending)[:count]]

    async def read_new(self, merchant: str, count: int, block_ms: int) -> list[Raw]:
        rows = self.stream[self.delivered : self.delivered + count]
        self.delivered += len(rows)
        self.pending.update(dict.fromkeys(i for i, _ in rows))
        return rows

    async def read_after(self, merchant: str, last: str, upto: str, count: int) -> list[Raw]:
        return [(i, f) for i, f in self.stream if after(i, last) and not after(i, upto)][:count]

    async def last_applied(self, merchant: str) -> str:
        return self.last

    async def refunded_totals(self, merchant: str, pids: Sequence[str]) -> dict[str, int]:
        return {p: self.refunded[p] for p in pids if p in self.refunded}

    async def apply(
        self, merchant: str, *, expected: str, upto: str, entries: int, increments: Increments
    ) -> bool:
        in_range = [i for i, _ in self.stream if after(i, self.last) and not after(i, upto)]
        if self.last != expected or len(in_range) != entries:
            self.refused += 1
            return False
        for minute, counters in increments.minutes.items():
            self.counters.setdefault(minute, Counter()).update(counters)
        self.refunded.update(increments.refunded)
        self.last = upto
        return True

    async def ack(self, merchant: str, ids: Sequence[str]) -> None:
        if self.crash_on_ack:
            self.crash_on_ack = False
            raise Crash("the consumer died before acknowledging")
        for i in ids:
            self.pending.pop(i, None)
