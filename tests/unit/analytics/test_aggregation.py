"""Aggregation of journal entries: outcomes, volumes, refund amounts, declines and latency."""

from __future__ import annotations

from typing import Any

import pytest

from switch.analytics import (
    APPROVED,
    DECLINED,
    FAILED,
    PENDING,
    Entry,
    after,
    aggregate,
    bucket_upper_us,
    classify,
    latency_bucket,
    parse_entry,
    percentile_us,
    refund_pids,
)
from switch.model import MethodType, Operation, Status
from tests.unit.analytics.journalkit import MINUTE, T0_MS, fields

A, C, V, R = Operation.AUTHORIZE, Operation.CAPTURE, Operation.VOID, Operation.REFUND


def entry(entry_id: str, *args: Any, **kwargs: Any) -> Entry:
    e = parse_entry(entry_id, fields(*args, **kwargs))
    assert e is not None
    return e


def test_a_switch_journal_entry_parses_with_every_field() -> None:
    e = entry(
        "5-1",
        A,
        Status.DECLINED,
        pid="pay_x",
        amount=250,
        currency="JPY",
        channel="card",
        method=MethodType.WECHAT_PAY,
        decline=2,
        latency_us=1234,
    )
    assert (e.id, e.pid, e.op, e.status, e.amount, e.currency) == (
        "5-1", "pay_x", "AUTHORIZE", "DECLINED", 250, "JPY"
    )  # fmt: skip
    assert (e.channel, e.method, e.time_ms, e.decline, e.latency_us) == (
        "card", "WECHAT_PAY", T0_MS, 2, 1234
    )  # fmt: skip


def test_an_entry_that_is_not_a_payment_change_is_skipped() -> None:
    assert parse_entry("1-0", {"pid": "pay_1"}) is None
    broken = fields(A, Status.CAPTURED) | {"amount": "ten"}
    assert parse_entry("1-0", broken) is None


@pytest.mark.parametrize(
    ("op", "status", "kwargs", "before", "expected"),
    [
        (A, Status.CAPTURED, {"authorized": 900, "captured": 900}, 0, (APPROVED, 900)),
        (A, Status.AUTHORIZED, {"authorized": 1000}, 0, (APPROVED, 1000)),
        (A, Status.DECLINED, {"decline": 1}, 0, (DECLINED, 1000)),
        (A, Status.FAILED, {}, 0, (FAILED, 1000)),
        (A, Status.PENDING, {}, 0, (PENDING, 1000)),
        (C, Status.CAPTURED, {"authorized": 1000, "captured": 600}, 0, (APPROVED, 600)),
        (C, Status.AUTHORIZED, {"authorized": 1000}, 0, (DECLINED, 0)),
        (C, Status.PENDING, {"authorized": 1000}, 0, (PENDING, 0)),
        (V, Status.VOIDED, {"authorized": 1000}, 0, (APPROVED, 1000)),
        (V, Status.AUTHORIZED, {"authorized": 1000}, 0, (DECLINED, 0)),
        (R, Status.PARTIALLY_REFUNDED, {"captured": 1000, "refunded": 300}, 0, (APPROVED, 300)),
        (R, Status.REFUNDED, {"captured": 1000, "refunded": 1000}, 300, (APPROVED, 700)),
        (R, Status.PARTIALLY_REFUNDED, {"captured": 1000, "refunded": 300}, 300, (DECLINED, 0)),
        (R, Status.CAPTURED, {"captured": 1000}, 0, (DECLINED, 0)),
        (R, Status.PENDING, {"captured": 1000, "refunded": 300}, 300, (PENDING, 0)),
    ],
)
def test_each_operation_has_an_outcome_and_the_money_it_moved(
    op: Operation,
    status: Status,
    kwargs: dict[str, int],
    before: int,
    expected: tuple[str, int],
) -> None:
    assert classify(entry("1-0", op, status, **kwargs), before) == expected


def test_refund_amounts_come_from_the_growth_of_the_refunded_total() -> None:
    # Two partial refunds of one payment in one batch, one declined refund between them, and
    # the total before the batch known from an earlier batch.
    es = [
        entry("1-0", R, Status.PARTIALLY_REFUNDED, pid="pay_1", captured=1000, refunded=400),
        entry("2-0", R, Status.PARTIALLY_REFUNDED, pid="pay_1", captured=1000, refunded=400),
        entry("3-0", R, Status.REFUNDED, pid="pay_1", captured=1000, refunded=1000),
    ]
    out = aggregate(es, {"pay_1": 100})
    counters = out.minutes[MINUTE]
    assert counters["n|sandbox|CARD|USD|REFUND|APPROVED"] == 2
    assert counters["v|sandbox|CARD|USD|REFUND|APPROVED"] == 300 + 600
    assert counters["n|sandbox|CARD|USD|REFUND|DECLINED"] == 1
    assert "v|sandbox|CARD|USD|REFUND|DECLINED" not in counters
    assert out.refunded == {"pay_1": 1000}
    assert refund_pids(es) == {"pay_1"}
    assert refund_pids([entry("1-0", R, Status.PENDING)]) == set()


def test_counters_are_split_by_minute_channel_method_currency_and_outcome() -> None:
    es = [
        entry("1-0", A, Status.CAPTURED, authorized=500, captured=500, latency_us=2000),
        entry("2-0", A, Status.CAPTURED, authorized=700, captured=700, latency_us=2100),
        entry("3-0", A, Status.DECLINED, amount=800, decline=2, channel="card"),
        entry("4-0", A, Status.DECLINED, amount=800, channel="card"),  # no code journaled
        entry("5-0", A, Status.CAPTURED, currency="CNY", authorized=9, method=MethodType.ALIPAY),
        entry("6-0", A, Status.CAPTURED, authorized=100, t_ms=T0_MS + 60_000),
    ]
    out = aggregate(es, {})
    first, second = out.minutes[MINUTE], out.minutes[MINUTE + 1]
    assert first["n|sandbox|CARD|USD|AUTHORIZE|APPROVED"] == 2
    assert first["v|sandbox|CARD|USD|AUTHORIZE|APPROVED"] == 1200
    assert first["n|card|CARD|USD|AUTHORIZE|DECLINED"] == 2
    assert first["v|card|CARD|USD|AUTHORIZE|DECLINED"] == 1600
    assert first["d|card|2"] == 1
    assert first["n|sandbox|ALIPAY|CNY|AUTHORIZE|APPROVED"] == 1
    assert (
        first[f"l|sandbox|{latency_bucket(2000)}"] + first[f"l|sandbox|{latency_bucket(2100)}"] == 2
    )
    assert dict(second) == {
        "n|sandbox|CARD|USD|AUTHORIZE|APPROVED": 1,
        "v|sandbox|CARD|USD|AUTHORIZE|APPROVED": 100,
    }
    assert out.refunded == {}


def test_latency_percentiles_are_within_a_bucket_of_the_truth() -> None:
    samples = list(range(1000, 101_000, 1000))  # 1 ms to 100 ms, evenly
    hist: dict[int, int] = {}
    for us in samples:
        b = latency_bucket(us)
        hist[b] = hist.get(b, 0) + 1
    for q, truth in ((0.5, 50_000), (0.9, 90_000), (0.99, 99_000)):
        got = percentile_us(hist, q)
        assert truth <= got <= truth * 1.1, (q, got)
    assert percentile_us({}, 0.5) == 0
    for us in (1, 7, 1000, 123_456, 10**7):
        assert us <= bucket_upper_us(latency_bucket(us)) <= us * 1.1 + 1


def test_stream_ids_compare_as_numbers() -> None:
    assert after("1-0", "")
    assert after("10-0", "9-5")
    assert after("9-10", "9-9")
    assert not after("9-9", "9-9")
    assert not after("100-0", "100-1")
