"""Analytics totals equal the payments made through a real switch: every operation and outcome,
decline codes, refunds, voids, currencies, merchants; and `payswitch stats` prints them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter

from payswitch.admin.v1 import admin_service_pb2 as pb
from payswitch.common.v1 import decline_code_pb2 as dc
from payswitch.common.v1 import payment_method_pb2 as pm
from payswitch.common.v1 import payment_status_pb2 as ps
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from switch.stack import DEFAULT_MERCHANT as ME
from tests.integration.analytics.conftest import ADMIN_KEY, admin
from tests.integration.switch.conftest import OTHER_KEY, connect
from tests.integration.switch.helpers import APPROVE, DECLINE, PENDING, authorize, key, money
from tests.support import REPO

INSUFFICIENT = "4000000000009995"


def op(name: str) -> int:
    return ps.OperationType.Value(f"OPERATION_TYPE_{name}")


def outcome(name: str) -> int:
    return pb.OperationOutcome.Value(f"OPERATION_OUTCOME_{name}")


def run_stats(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "switch.stats", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_totals_equal_the_payments_made(
    sandbox_factory, switch_factory, analytics_factory, tmp_path
):
    sb = sandbox_factory()
    sw = switch_factory([(sb, {})])
    an = analytics_factory(sw.config)
    made: dict[tuple[str, str, int, int], Counter[str]] = {}

    def expect(merchant: str, cur: str, operation: str, result: str, amount: int) -> None:
        made.setdefault((merchant, cur, op(operation), outcome(result)), Counter()).update(
            n=1, v=amount
        )

    async with connect(sw) as c:
        for amount in range(1000, 1005):
            p = (await c.Authorize(authorize(amount))).payment
            assert p.status == ps.PAYMENT_STATUS_CAPTURED
            expect(ME, "USD", "AUTHORIZE", "APPROVED", amount)
        for number, amount in ((DECLINE, 111), (DECLINE, 222), (INSUFFICIENT, 333)):
            p = (await c.Authorize(authorize(amount, number=number))).payment
            assert p.status == ps.PAYMENT_STATUS_DECLINED
            expect(ME, "USD", "AUTHORIZE", "DECLINED", amount)
        await c.Authorize(authorize(333, "EUR"))
        expect(ME, "EUR", "AUTHORIZE", "APPROVED", 333)

        manual = (await c.Authorize(authorize(2000, manual=True))).payment
        expect(ME, "USD", "AUTHORIZE", "APPROVED", 2000)
        await c.Capture(
            gw.CaptureRequest(idempotency_key=key(), payment_id=manual.id, amount=money(1500))
        )
        expect(ME, "USD", "CAPTURE", "APPROVED", 1500)
        for part in (500, 1000):
            await c.Refund(
                gw.RefundRequest(idempotency_key=key(), payment_id=manual.id, amount=money(part))
            )
            expect(ME, "USD", "REFUND", "APPROVED", part)

        voided = (await c.Authorize(authorize(700, manual=True))).payment
        expect(ME, "USD", "AUTHORIZE", "APPROVED", 700)
        await c.Void(gw.VoidRequest(idempotency_key=key(), payment_id=voided.id))
        expect(ME, "USD", "VOID", "APPROVED", 700)

        # An unknown outcome: recorded PENDING first, then APPROVED once the channel says so.
        slow = (await c.Authorize(authorize(900, number=PENDING))).payment
        assert slow.status == ps.PAYMENT_STATUS_PENDING
        expect(ME, "USD", "AUTHORIZE", "PENDING", 900)
        for _ in range(100):
            got = (await c.GetPayment(gw.GetPaymentRequest(payment_id=slow.id))).payment
            if got.status != ps.PAYMENT_STATUS_PENDING:
                break
            await asyncio.sleep(0.1)
        assert got.status == ps.PAYMENT_STATUS_CAPTURED
        expect(ME, "USD", "AUTHORIZE", "APPROVED", 900)

    async with connect(sw, OTHER_KEY) as other:
        await other.Authorize(authorize(55, number=APPROVE))
        expect("m_other", "USD", "AUTHORIZE", "APPROVED", 55)

    async with admin(an) as a:
        everything = await a.settled()
        assert everything.backlog_entries == 0
        seen = {
            (v.merchant_id, v.volume.currency, v.operation, v.outcome): Counter(
                n=v.count, v=v.volume.amount_minor
            )
            for v in everything.volumes
        }
        assert seen == made
        assert {v.channel for v in everything.volumes} == {sb.name}
        assert {v.method for v in everything.volumes} == {pm.PAYMENT_METHOD_TYPE_CARD}

        (channel,) = everything.channels
        assert (channel.approved, channel.declined, channel.failed, channel.pending) == (
            10,
            3,
            0,
            1,
        )
        assert channel.approval_rate == 10 / 13
        assert [(d.code, d.count) for d in channel.declines] == [
            (dc.DECLINE_CODE_DO_NOT_HONOR, 2),
            (dc.DECLINE_CODE_INSUFFICIENT_FUNDS, 1),
        ]
        refunds = [(r.count, r.volume.amount_minor, r.volume.currency) for r in channel.refunds]
        assert refunds == [(2, 1500, "USD")]
        assert [(v.count, v.volume.amount_minor) for v in channel.voids] == [(1, 700)]
        # The switch journals each channel call's latency: 13 authorizations, 1 capture,
        # 2 refunds and 1 void went to the channel (the resolution of the PENDING one came
        # from the channel's event, not from a call).
        assert channel.latency.samples == 17
        assert 0 < channel.latency.p50_us <= channel.latency.p90_us <= channel.latency.p99_us
        assert sum(m.approved for m in everything.minutes) == 10
        assert sum(m.declined for m in everything.minutes) == 3

        theirs = await a.stats(merchant_id="m_other")
        rows = [(v.merchant_id, v.count, v.volume.amount_minor) for v in theirs.volumes]
        assert rows == [("m_other", 1, 55)]
        elsewhere = await a.stats(channel="no_such_channel")
        assert list(elsewhere.volumes) == []
        assert list(elsewhere.channels) == []

    chart = tmp_path / "chart.png"
    out = await asyncio.to_thread(
        run_stats, "--admin", an.address, "--api-key", ADMIN_KEY, "--minutes", "30",
        "--plot", str(chart),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert chart.read_bytes().startswith(b"\x89PNG")
    assert "all merchants, last 30 min" in out.stdout
    lines = out.stdout.splitlines()
    row = next(line for line in lines if line.startswith(sb.name))
    assert row.split()[:7] == [sb.name, "13", "10", "3", "0", "1", "76.9%"]
    assert "DO_NOT_HONOR 2, INSUFFICIENT_FUNDS 1" in row
    refund_row = next(line for line in lines if " REFUND " in line)
    assert refund_row.split() == [ME, sb.name, "CARD", "USD", "REFUND", "APPROVED", "2", "15.00"]
