"""`payswitch stats --plot`: the lines the chart draws, and the PNG."""

from __future__ import annotations

import datetime
import pathlib

from google.protobuf import timestamp_pb2

from payswitch.admin.v1 import admin_service_pb2 as pb
from payswitch.common.v1 import money_pb2
from switch import stats

T0 = datetime.datetime(2026, 11, 26, 2, 0, tzinfo=datetime.UTC)


def minute(
    k: int, channel: str, approved: int, declined: int, failed: int = 0, **volume: int
) -> pb.ChannelMinute:
    at = timestamp_pb2.Timestamp()
    at.FromDatetime(T0 + datetime.timedelta(minutes=k))
    return pb.ChannelMinute(
        minute=at,
        channel=channel,
        approved=approved,
        declined=declined,
        failed=failed,
        approved_volume=[money_pb2.Money(amount_minor=v, currency=c) for c, v in volume.items()],
    )


REPLY = pb.GetStatsResponse(
    minutes=[
        minute(0, "card", 3, 1, USD=12_345),
        minute(0, "alipay", 0, 0),
        minute(1, "card", 1, 0, 1, USD=500, JPY=700),
    ]
)


def test_rates_are_approved_over_final_answers_per_minute() -> None:
    rates, _ = stats.series(REPLY)
    assert set(rates) == {"card"}  # a minute with no final answer draws no rate point
    xs, ys = rates["card"]
    assert xs == [T0, T0 + datetime.timedelta(minutes=1)]
    assert ys == [75.0, 50.0]


def test_volumes_are_per_channel_and_currency_in_major_units() -> None:
    _, volumes = stats.series(REPLY)
    assert volumes["card USD"][1] == [123.45, 5.0]
    assert volumes["card JPY"][1] == [700.0]  # JPY has no minor unit


def test_the_chart_is_a_png(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "chart.png"
    stats.plot(REPLY, str(path))
    assert path.read_bytes().startswith(b"\x89PNG")
    assert path.stat().st_size > 5_000
