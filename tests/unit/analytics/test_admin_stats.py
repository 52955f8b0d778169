"""The read side without a network: the [admin] config, minute counters summed into a
GetStatsResponse, and the `payswitch stats` tables."""

from __future__ import annotations

import hashlib
import pathlib
import re

import pytest

from payswitch.admin.v1 import admin_service_pb2 as pb
from payswitch.common.v1 import decline_code_pb2, payment_method_pb2, payment_status_pb2
from switch.admin import AdminConfig, StatsBuilder, load, parse_admin
from switch.analytics import aggregate, latency_bucket, parse_entry
from switch.config import ConfigError
from switch.model import MethodType, Operation, Status
from switch.stats import major, render, table
from tests.unit.analytics.journalkit import MINUTE, fields

KEY_HASH = hashlib.sha256(b"admin-key").hexdigest()
A, V, R = Operation.AUTHORIZE, Operation.VOID, Operation.REFUND


def builder_with(entries: list[dict[str, str]], channel: str = "") -> StatsBuilder:
    parsed = [parse_entry(f"{i + 1}-0", f) for i, f in enumerate(entries)]
    inc = aggregate([e for e in parsed if e is not None], {})
    b = StatsBuilder(channel)
    for minute, counters in inc.minutes.items():
        for name, value in counters.items():
            b.add("m_test", minute, name, value)
    return b


SAMPLE = [
    fields(A, Status.CAPTURED, authorized=1000, captured=1000, latency_us=3000),
    fields(
        A,
        Status.CAPTURED,
        authorized=500,
        captured=500,
        latency_us=5000,
        t_ms=(MINUTE + 1) * 60_000,
    ),
    fields(A, Status.DECLINED, amount=700, decline=2),
    fields(A, Status.DECLINED, amount=700, decline=2, t_ms=(MINUTE + 1) * 60_000),
    fields(A, Status.DECLINED, amount=10, decline=1),
    fields(A, Status.FAILED, amount=10),
    fields(A, Status.PENDING, amount=10),
    fields(R, Status.PARTIALLY_REFUNDED, pid="pay_r", captured=1000, refunded=250),
    fields(V, Status.VOIDED, pid="pay_v", authorized=300),
    fields(
        A,
        Status.CAPTURED,
        authorized=88,
        currency="CNY",
        channel="alipay",
        method=MethodType.ALIPAY,
    ),
]


def test_minute_counters_become_rows_channel_summaries_and_a_series() -> None:
    reply = builder_with(SAMPLE).response(start_minute=MINUTE, end_minute=MINUTE + 1, backlog=3)
    assert reply.start_time.ToMilliseconds() == MINUTE * 60_000
    assert reply.end_time.ToMilliseconds() == (MINUTE + 2) * 60_000
    assert reply.backlog_entries == 3
    row = next(
        v
        for v in reply.volumes
        if v.channel == "sandbox"
        and v.operation == payment_status_pb2.OPERATION_TYPE_AUTHORIZE
        and v.outcome == pb.OPERATION_OUTCOME_APPROVED
    )
    assert row.merchant_id == "m_test"
    assert row.method == payment_method_pb2.PAYMENT_METHOD_TYPE_CARD
    assert (row.count, row.volume.amount_minor, row.volume.currency) == (2, 1500, "USD")

    alipay, sandbox = reply.channels
    assert (alipay.channel, alipay.approved, alipay.approval_rate) == ("alipay", 1, 1.0)
    assert alipay.latency.samples == 0
    assert (sandbox.approved, sandbox.declined, sandbox.failed, sandbox.pending) == (2, 3, 1, 1)
    assert sandbox.approval_rate == pytest.approx(2 / 6)
    assert [(d.code, d.count) for d in sandbox.declines] == [
        (decline_code_pb2.DECLINE_CODE_INSUFFICIENT_FUNDS, 2),
        (decline_code_pb2.DECLINE_CODE_DO_NOT_HONOR, 1),
    ]
    assert sandbox.latency.samples == 2
    assert 3000 <= sandbox.latency.p50_us <= 3300
    assert 5000 <= sandbox.latency.p99_us <= 5500
    assert [(r.count, r.volume.amount_minor) for r in sandbox.refunds] == [(1, 250)]
    assert [(v.count, v.volume.amount_minor) for v in sandbox.voids] == [(1, 300)]

    series = [
        (m.minute.ToMilliseconds() // 60_000 - MINUTE, m.channel, m.approved, m.declined, m.failed)
        for m in reply.minutes
    ]
    assert series == [(0, "alipay", 1, 0, 0), (0, "sandbox", 1, 2, 1), (1, "sandbox", 1, 1, 0)]
    assert [v.amount_minor for v in reply.minutes[1].approved_volume] == [1000]


def test_a_channel_filter_keeps_only_that_channel() -> None:
    reply = builder_with(SAMPLE, channel="alipay").response(
        start_minute=MINUTE, end_minute=MINUTE, backlog=0
    )
    assert {v.channel for v in reply.volumes} == {"alipay"}
    assert [c.channel for c in reply.channels] == ["alipay"]


def test_the_latency_bucket_field_round_trips() -> None:
    b = StatsBuilder()
    b.add("m", MINUTE, f"l|card|{latency_bucket(40_000)}", 10)
    stats = b.response(start_minute=MINUTE, end_minute=MINUTE, backlog=0).channels[0]
    assert stats.latency.samples == 10
    assert 40_000 <= stats.latency.p90_us <= 44_000


def test_admin_config_is_optional_and_checked_key_by_key() -> None:
    assert parse_admin(None) == AdminConfig()
    cfg = parse_admin({"api_key_sha256": KEY_HASH, "listen": "127.0.0.1:7000", "retention_s": 7200})
    assert cfg == AdminConfig(api_key_sha256=KEY_HASH, listen="127.0.0.1:7000", retention_s=7200)
    for raw, message in [
        ({}, "admin.api_key_sha256: required"),
        ({"api_key_sha256": "abc"}, "admin.api_key_sha256: must be 64 lower-case hex digits"),
        ({"api_key_sha256": KEY_HASH, "listen": "nowhere"}, "admin.listen: must be 'host:port'"),
        ({"api_key_sha256": KEY_HASH, "retention_s": 5}, "admin.retention_s: must be from 3600"),
        ({"api_key_sha256": KEY_HASH, "port": 1}, "admin.port: unknown key"),
        ("x", "admin: must be a table"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_admin(raw)


def test_one_file_carries_the_switch_config_and_the_admin_table(tmp_path: pathlib.Path) -> None:
    merchant_hash = hashlib.sha256(b"merchant").hexdigest()
    path = tmp_path / "switch.toml"
    path.write_text(
        f"""
[security]
fingerprint_key_file = "fp.key"

[[merchants]]
id = "m_one"
api_key_sha256 = "{merchant_hash}"

[[channels]]
name = "sandbox"
endpoints = ["127.0.0.1:1"]

[admin]
api_key_sha256 = "{KEY_HASH}"
listen = "127.0.0.1:7001"
"""
    )
    (tmp_path / "fp.key").write_text("ab" * 32)
    cfg, admin = load(path)
    assert [m.id for m in cfg.merchants] == ["m_one"]
    assert admin.listen == "127.0.0.1:7001"
    path.write_text(path.read_text().replace('listen = "127.0.0.1:7001"', "listen = 7001"))
    with pytest.raises(ConfigError, match=re.escape("admin.listen: must be str, got 7001")):
        load(path)
    with pytest.raises(ConfigError, match="no such file"):
        load(tmp_path / "missing.toml")


def test_amounts_print_exactly_in_major_units() -> None:
    assert major(123456, "USD") == "1234.56"
    assert major(5, "USD") == "0.05"
    assert major(1500, "JPY") == "1500"
    assert major(1234, "BHD") == "1.234"


def test_the_stats_tables_show_every_channel_and_row() -> None:
    reply = builder_with(SAMPLE).response(start_minute=MINUTE, end_minute=MINUTE + 1, backlog=0)
    text = render(reply, merchant="m_test", minutes=2)
    assert "merchant m_test, last 2 min" in text
    assert "journal entries not applied yet: 0" in text
    lines = text.splitlines()
    sandbox = next(line for line in lines if line.startswith("sandbox"))
    assert sandbox.split()[:7] == ["sandbox", "6", "2", "3", "1", "1", "33.3%"]
    assert "INSUFFICIENT_FUNDS 2, DO_NOT_HONOR 1" in sandbox
    row = next(
        line for line in lines if "AUTHORIZE" in line and "APPROVED" in line and "USD" in line
    )
    assert row.split() == [
        "m_test",
        "sandbox",
        "CARD",
        "USD",
        "AUTHORIZE",
        "APPROVED",
        "2",
        "15.00",
    ]
    empty = StatsBuilder().response(start_minute=MINUTE, end_minute=MINUTE, backlog=0)
    assert render(empty, merchant="", minutes=1).endswith("no payments in this window")


def test_tables_align_numbers_right_and_text_left() -> None:
    out = table(["NAME", "N"], [["a", 5], ["long", 100]])
    assert out.splitlines() == ["NAME    N", "a       5", "long  100"]
