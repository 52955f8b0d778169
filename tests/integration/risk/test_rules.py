"""Amount limits, the anomaly score, and reloading the rules without a restart."""

from __future__ import annotations

import asyncio
import signal
import urllib.request

from payswitch.admin.v1 import admin_service_pb2 as pb
from payswitch.common.v1 import decline_code_pb2, payment_status_pb2
from payswitch.gateway.v1 import payment_pb2
from tests.integration.analytics.conftest import admin
from tests.integration.risk.conftest import amount_rule, eventually, pay
from tests.integration.switch.conftest import Switch, connect
from tests.support import free_port

CAPTURED = payment_status_pb2.PAYMENT_STATUS_CAPTURED
DECLINED = payment_status_pb2.PAYMENT_STATUS_DECLINED
PENDING = payment_status_pb2.PAYMENT_STATUS_PENDING


async def test_an_amount_over_the_limit_of_its_currency_is_rejected(
    sandbox_factory, switch_factory
):
    sandbox = sandbox_factory()
    metrics = f"127.0.0.1:{free_port()}"
    switch = switch_factory(
        [(sandbox, {})],
        extra=amount_rule("usd_ceiling", currency="USD", max_amount=50_000),
        metrics_listen=metrics,
    )
    async with connect(switch) as client:
        over = await pay(client, 50_001)
        assert over.status == DECLINED
        assert over.decline.code == decline_code_pb2.DECLINE_CODE_RISK_REJECTED
        assert (over.decline.raw_code, over.risk.rule) == ("usd_ceiling", "usd_ceiling")
        assert over.channel == ""  # never sent to a channel
        assert (await pay(client, 50_000)).status == CAPTURED
        assert (await pay(client, 90_000, currency="EUR")).status == CAPTURED
    assert not any(over.id in str(r["reference"]) for r in sandbox.received())
    text = await asyncio.to_thread(_scrape, f"http://{metrics}/metrics")
    assert 'payswitch_risk_stopped_total{decision="REJECT",rule="usd_ceiling"} 1.0' in text


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return reply.read().decode()


async def test_an_amount_far_above_the_cards_pattern_is_held_for_review(
    sandbox_factory, switch_factory
):
    rule = "\n[risk.anomaly]\nthreshold = 5.0\nmin_history = 3\nalpha = 0.5\n"
    switch = switch_factory([(sandbox_factory(), {})], extra=rule)
    async with connect(switch) as client:
        usual = [await pay(client, 1_000) for _ in range(3)]
        assert [p.status for p in usual] == [CAPTURED] * 3
        odd = await pay(client, 10_000)
        assert odd.status == PENDING
        assert odd.pending_reason == payment_pb2.PENDING_REASON_RISK_REVIEW
        assert odd.risk.rule == "anomaly"
        assert odd.risk.anomaly_score == 10.0
        normal = await pay(client, 2_000)
        assert normal.status == CAPTURED
        assert normal.risk.anomaly_score == 2.0  # the held amount did not move the average


def rewrite(switch: Switch, old: str, new: str) -> None:
    text = switch.config.read_text()
    assert old in text
    switch.config.write_text(text.replace(old, new))


async def test_sighup_applies_a_good_file_and_refuses_a_bad_one(sandbox_factory, switch_factory):
    old = amount_rule("ceiling_a", currency="USD", max_amount=50_000)
    switch = switch_factory([(sandbox_factory(), {})], extra=old)
    assert switch.proc is not None
    async with connect(switch) as client:
        bad = old.replace('action = "reject"', 'action = "shrug"')
        rewrite(switch, old, bad)
        switch.proc.send_signal(signal.SIGHUP)
        log = await eventually(
            lambda: _text(switch), lambda t: "config reload refused" in t, timeout_s=10
        )
        assert "risk.amount_limits[0].action" in log
        kept = await pay(client, 60_000)
        assert (kept.status, kept.risk.rule) == (DECLINED, "ceiling_a")
        assert (await pay(client, 40_000)).status == CAPTURED

        good = amount_rule("ceiling_b", currency="USD", max_amount=30_000)
        rewrite(switch, bad, good)
        switch.proc.send_signal(signal.SIGHUP)
        await eventually(lambda: _text(switch), lambda t: "config reloaded" in t, timeout_s=10)
        now = await pay(client, 40_000)
        assert (now.status, now.risk.rule) == (DECLINED, "ceiling_b")
        assert switch.proc.poll() is None


async def test_reload_config_reaches_every_switch(
    sandbox_factory, switch_factory, analytics_factory
):
    sandbox = sandbox_factory()
    switches = [switch_factory([(sandbox, {})]) for _ in range(2)]
    analytics = analytics_factory(switches[0].config)
    rule = amount_rule("ceiling", currency="USD", max_amount=10_000)
    for sw in switches:
        sw.config.write_text(sw.config.read_text() + rule)
    async with admin(analytics) as adm:
        reply = await adm.stub.ReloadConfig(
            pb.ReloadConfigRequest(), metadata=adm.metadata, timeout=10
        )
    assert reply.switches_notified == 2
    for sw in switches:
        await eventually(lambda sw=sw: _text(sw), lambda t: "config reloaded" in t, timeout_s=10)
        async with connect(sw) as client:
            assert (await pay(client, 20_000)).risk.rule == "ceiling"


async def _text(switch: Switch) -> str:
    return switch.log_text()
