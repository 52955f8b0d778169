"""`payswitch stats`: the payment analytics as tables in the terminal, and optionally a chart.

    payswitch stats --admin HOST:PORT --api-key KEY [--merchant M] [--channel C] [--minutes N]
                    [--plot FILE.png]

It asks AdminService.GetStats (served by `payswitch analytics`) and prints one table per
channel and one of counts and volumes. `--plot` draws approval rate and approved volume per
channel over time with matplotlib, when it is installed.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import grpc

from payswitch.admin.v1 import admin_service_pb2 as pb
from payswitch.admin.v1 import admin_service_pb2_grpc as pb_grpc
from payswitch.common.v1 import decline_code_pb2, payment_method_pb2, payment_status_pb2
from switch.currency import exponent

KEY_ENV = "PAYSWITCH_ADMIN_API_KEY"
INSTALL_HINT = (
    "--plot needs matplotlib, which is not installed; install it with: pip install matplotlib"
)


def major(amount_minor: int, currency: str) -> str:
    """An amount in major units with the currency's exponent, exactly (no float): 1234 USD ->
    '12.34'."""
    digits = exponent(currency)
    if not digits:
        return str(amount_minor)
    whole, frac = divmod(amount_minor, 10**digits)
    return f"{whole}.{frac:0{digits}d}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table: text left-aligned, numbers right-aligned, two spaces apart."""
    cells = [[str(c) for c in headers], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [bool(rows) and all(_numeric(r[i]) for r in cells[1:]) for i in range(len(headers))]
    lines = []
    for r in cells:
        parts = [
            c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _numeric(text: str) -> bool:
    return text == "-" or text.rstrip("%").replace(".", "", 1).isdigit()


def _name(enum: Any, value: int) -> str:
    prefix = enum.DESCRIPTOR.values_by_number[0].name.removesuffix("UNSPECIFIED")
    try:
        return str(enum.Name(value)).removeprefix(prefix)
    except ValueError:
        return str(value)


def _ms(us: int, samples: int) -> str:
    return f"{us / 1000:.1f}" if samples else "-"


def render(reply: pb.GetStatsResponse, *, merchant: str, minutes: int) -> str:
    """The text `payswitch stats` prints."""
    start = reply.start_time.ToDatetime(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    end = reply.end_time.ToDatetime(datetime.UTC).strftime("%H:%M")
    head = (
        f"payswitch stats: {'merchant ' + merchant if merchant else 'all merchants'}, "
        f"last {minutes} min ({start} to {end} UTC); "
        f"journal entries not applied yet: {reply.backlog_entries}"
    )
    if not reply.volumes:
        return head + "\n\nno payments in this window"
    channels = []
    for c in reply.channels:
        final = c.approved + c.declined + c.failed
        top = ", ".join(
            f"{_name(decline_code_pb2.DeclineCode, d.code)} {d.count}" for d in c.declines[:3]
        )
        channels.append(
            [
                c.channel,
                final,
                c.approved,
                c.declined,
                c.failed,
                c.pending,
                f"{c.approval_rate * 100:.1f}%" if final else "-",
                _ms(c.latency.p50_us, c.latency.samples),
                _ms(c.latency.p90_us, c.latency.samples),
                _ms(c.latency.p99_us, c.latency.samples),
                sum(r.count for r in c.refunds),
                sum(v.count for v in c.voids),
                top or "-",
            ]
        )
    volumes = [
        [
            v.merchant_id,
            v.channel,
            _name(payment_method_pb2.PaymentMethodType, v.method),
            v.volume.currency,
            _name(payment_status_pb2.OperationType, v.operation),
            _name(pb.OperationOutcome, v.outcome),
            v.count,
            major(v.volume.amount_minor, v.volume.currency),
        ]
        for v in reply.volumes
    ]
    return "\n\n".join(
        [
            head,
            "Authorizations by channel (latency in ms; refunds and voids approved)",
            table(
                [
                    "CHANNEL", "AUTHS", "APPROVED", "DECLINED", "FAILED", "PENDING", "APPROVAL",
                    "P50", "P90", "P99", "REFUNDS", "VOIDS", "TOP DECLINES",
                ],
                channels,
            ),
            "Operations by merchant, channel, method and currency (volume in major units)",
            table(
                [
                    "MERCHANT", "CHANNEL", "METHOD", "CURRENCY", "OPERATION", "OUTCOME",
                    "COUNT", "VOLUME",
                ],
                volumes,
            ),
        ]
    )  # fmt: skip


Series = dict[str, tuple[list[datetime.datetime], list[float]]]


def series(reply: pb.GetStatsResponse) -> tuple[Series, Series]:
    """The chart's lines: approval rate (%) per channel, and approved volume (major units) per
    channel and currency, minute by minute. A minute with no final answer has no rate point."""
    rates: Series = defaultdict(lambda: ([], []))
    volumes: Series = defaultdict(lambda: ([], []))
    for m in reply.minutes:
        at = m.minute.ToDatetime(datetime.UTC)
        final = m.approved + m.declined + m.failed
        if final:
            rates[m.channel][0].append(at)
            rates[m.channel][1].append(100 * m.approved / final)
        for v in m.approved_volume:
            line = volumes[f"{m.channel} {v.currency}"]
            line[0].append(at)
            # A point on a chart, not money: the tables print exact amounts.
            line[1].append(float(major(v.amount_minor, v.currency)))
    return dict(rates), dict(volumes)


def plot(reply: pb.GetStatsResponse, path: str) -> None:
    """Approval rate and approved volume per channel, minute by minute, as a PNG."""
    matplotlib: Any = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")
    rates, volumes = series(reply)
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 6))
    for name, (xs, ys) in sorted(rates.items()):
        top.plot(xs, ys, marker="o", label=name)
    top.set_ylabel("approval rate %")
    top.set_ylim(0, 105)
    for name, (xs, ys) in sorted(volumes.items()):
        bottom.plot(xs, ys, marker="o", label=name)
    bottom.set_ylabel("approved volume (major units)")
    bottom.set_xlabel("minute (UTC)")
    for ax in (top, bottom):
        if ax.lines:
            ax.legend(loc="best")
        ax.grid(True, alpha=0.3)
    fig.suptitle("payswitch: approval rate and volume per channel")
    fig.autofmt_xdate()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str]) -> int:
    """`payswitch stats ...`; 0 on success, 1 when the admin service refused or failed, 2 on
    bad arguments."""
    parser = argparse.ArgumentParser(prog="payswitch stats", description=__doc__.split("\n")[0])
    parser.add_argument("--admin", required=True, metavar="ADDR", help="AdminService host:port")
    parser.add_argument(
        "--api-key", default=os.environ.get(KEY_ENV), help=f"the admin API key (or ${KEY_ENV})"
    )
    parser.add_argument("--merchant", default="", help="one merchant; default: all")
    parser.add_argument("--channel", default="", help="one channel; default: all")
    parser.add_argument("--minutes", type=int, default=60, help="the window (default 60)")
    parser.add_argument("--plot", metavar="FILE.png", help="also draw a chart to this file")
    ns = parser.parse_args(list(argv))
    if not ns.api_key:
        parser.error(f"--api-key is required (or set {KEY_ENV})")
    request = pb.GetStatsRequest(
        merchant_id=ns.merchant, channel=ns.channel, window_minutes=ns.minutes
    )
    with grpc.insecure_channel(ns.admin) as channel:
        try:
            reply: pb.GetStatsResponse = pb_grpc.AdminServiceStub(channel).GetStats(
                request, metadata=(("authorization", f"Bearer {ns.api_key}"),), timeout=30
            )
        except grpc.RpcError as exc:
            code = exc.code().name if hasattr(exc, "code") else "ERROR"
            detail = exc.details() if hasattr(exc, "details") else str(exc)
            print(f"payswitch stats: {code}: {detail}", file=sys.stderr)
            return 1
    print(render(reply, merchant=ns.merchant, minutes=ns.minutes))
    if ns.plot:
        if importlib.util.find_spec("matplotlib") is None:
            print(f"payswitch stats: {INSTALL_HINT}", file=sys.stderr)
            return 1
        plot(reply, ns.plot)
        print(f"\nchart written to {ns.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
