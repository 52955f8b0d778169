"""Smart routing end to end: success rates, the breaker, least cost, BIN rules and cascading.

Real redis, real switch processes, real sandbox workers; a sandbox restarted with
`--decline-all CODE` or `--unavailable` plays a channel that goes bad (and then recovers).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import urllib.request
from collections import Counter

import redis.asyncio as aioredis

from payswitch.common.v1 import payment_status_pb2 as ps
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from tests.integration.switch.conftest import Client, Sandbox, connect
from tests.integration.switch.helpers import APPROVE, DECLINE, TIMEOUT, authorize, key, money
from tests.support import free_port

OTHER_BIN_CARD = "4111111111111111"  # not a sandbox test card: approves


async def channels_of(client: Client, n: int, number: str = APPROVE) -> Counter[str]:
    """Where n payments went (one after another, as the router's rates move between them)."""
    seen: Counter[str] = Counter()
    for _ in range(n):
        seen[(await client.Authorize(authorize(number=number))).payment.channel] += 1
    return seen


def restart(sb: Sandbox, *args: str) -> None:
    sb.stop()
    sb.args = list(args)
    sb.start()


def metrics_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


def transitions(text: str, channel: str, state: str) -> float:
    for line in text.splitlines():
        if (
            line.startswith("payswitch_breaker_transitions_total{")
            and f'channel="{channel}"' in line
            and f'state="{state}"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_success_rate_routing_moves_traffic_off_a_declining_channel_and_back(
    sandbox_factory, switch_factory
):
    steady = sandbox_factory("steady")
    flaky = sandbox_factory("flaky")
    sw = switch_factory(
        [(steady, {}), (flaky, {})],
        extra=(
            '\n[routing]\nstrategy = "success_rate"\nexploration = 0.1\n'
            "success_window_s = 3\nsuccess_min_samples = 5\nsync_interval_ms = 100\n"
        ),
    )
    async with connect(sw) as client:
        before = await channels_of(client, 30)
        assert before["flaky"] >= 5 and before["steady"] >= 5  # equal peers share traffic

        restart(flaky, "--decline-all", "do_not_honor")
        declines = 0  # once the switch sees flaky again, the router learns its declines
        deadline = time.monotonic() + 20
        while declines < 10:
            assert time.monotonic() < deadline, "flaky never came back to decline"
            p = (await client.Authorize(authorize())).payment
            declines += p.status == ps.PAYMENT_STATUS_DECLINED
        await asyncio.sleep(0.3)
        during = await channels_of(client, 40)
        assert during["flaky"] <= 10, during  # only the exploration share (~5%) goes there

        restart(flaky)  # it recovers; its old declines leave the 3 s window
        deadline = time.monotonic() + 30
        while True:
            after = await channels_of(client, 20)
            if after["flaky"] >= 5:
                break
            assert time.monotonic() < deadline, f"traffic never came back to flaky: {after}"
            await asyncio.sleep(0.5)
        result = await client.Authorize(authorize())
        assert result.payment.status == ps.PAYMENT_STATUS_CAPTURED


async def test_the_breaker_opens_after_consecutive_failures_then_half_opens_and_closes(
    sandbox_factory, switch_factory
):
    flaky = sandbox_factory("flaky", "--unavailable")
    backup = sandbox_factory("backup")
    metrics_port = free_port()
    sw = switch_factory(
        [(flaky, {"priority": 1}), (backup, {"priority": 2})],
        metrics_listen=f"127.0.0.1:{metrics_port}",
        extra="\n[routing.breaker]\nfailures = 3\ncooldown_ms = 1500\n",
    )
    async with connect(sw) as client:
        for _ in range(6):
            p = (await client.Authorize(authorize())).payment
            assert p.status == ps.PAYMENT_STATUS_CAPTURED and p.channel == "backup"
        # Three refusals opened the breaker: the next three never went to flaky at all.
        assert len(flaky.received("authorize")) == 3
        text = await asyncio.to_thread(metrics_text, metrics_port)
        assert transitions(text, "flaky", "OPEN") == 1
        assert 'payswitch_breaker_state{channel="flaky"' in text

        await asyncio.sleep(1.6)  # the cool-down: one trial goes, fails, and it opens again
        for _ in range(3):
            assert (await client.Authorize(authorize())).payment.channel == "backup"
        assert len(flaky.received("authorize")) == 4
        text = await asyncio.to_thread(metrics_text, metrics_port)
        assert transitions(text, "flaky", "HALF_OPEN") == 1
        assert transitions(text, "flaky", "OPEN") == 2

        restart(flaky)  # healthy again: the next trial after the cool-down closes the breaker
        deadline = time.monotonic() + 20
        while (await client.Authorize(authorize())).payment.channel != "flaky":
            assert time.monotonic() < deadline, "the breaker never closed"
            await asyncio.sleep(0.2)
        assert (await channels_of(client, 5)) == Counter({"flaky": 5})
        text = await asyncio.to_thread(metrics_text, metrics_port)
        assert transitions(text, "flaky", "CLOSED") == 1
    assert "circuit breaker open" in sw.log_text()


async def test_least_cost_routing_picks_the_cheaper_channel_for_the_currency(
    sandbox_factory, switch_factory
):
    dear = sandbox_factory("dear")
    cheap = sandbox_factory("cheap")
    sw = switch_factory(
        [(dear, {}), (cheap, {})],
        extra=(
            '\n[routing]\nstrategy = "least_cost"\n'
            '[[routing.fees]]\nchannel = "dear"\ncurrency = "USD"\npercent_bp = 290\n'
            "fixed_minor = 30\n"
            '[[routing.fees]]\nchannel = "cheap"\ncurrency = "USD"\npercent_bp = 150\n'
            "fixed_minor = 25\n"
            '[[routing.fees]]\nchannel = "dear"\ncurrency = "EUR"\npercent_bp = 100\n'
        ),
    )
    async with connect(sw) as client:
        assert await channels_of(client, 10) == Counter({"cheap": 10})
        for _ in range(5):  # cheap has no EUR fee: it comes after the priced channel
            p = (await client.Authorize(authorize(currency="EUR"))).payment
            assert p.channel == "dear"
    assert len(dear.received("authorize")) == 5


async def test_a_bin_rule_pins_its_range_to_one_channel(sandbox_factory, switch_factory):
    first = sandbox_factory("first")
    pinned = sandbox_factory("pinned")
    sw = switch_factory(
        [(first, {"priority": 1}), (pinned, {"priority": 2})],
        extra=(
            '\n[[routing.rules]]\nname = "bank_x"\nbins = ["411100-411199"]\n'
            'channels = ["pinned"]\n'
        ),
    )
    async with connect(sw) as client:
        assert await channels_of(client, 5, OTHER_BIN_CARD) == Counter({"pinned": 5})
        assert await channels_of(client, 5, APPROVE) == Counter({"first": 5})


async def test_a_reloaded_rule_moves_traffic_without_a_restart(sandbox_factory, switch_factory):
    first = sandbox_factory("first")
    pinned = sandbox_factory("pinned")
    sw = switch_factory([(first, {"priority": 1}), (pinned, {"priority": 2})])
    assert sw.proc is not None
    async with connect(sw) as client:
        assert await channels_of(client, 3, OTHER_BIN_CARD) == Counter({"first": 3})
        text = sw.config.read_text()
        sw.config.write_text(
            text + '\n[[routing.rules]]\nname = "bank_x"\nbins = ["411100-411199"]\n'
            'channels = ["pinned"]\n'
        )
        sw.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "config reloaded" not in sw.log_text():
            assert time.monotonic() < deadline, "the switch did not reload its config"
            await asyncio.sleep(0.05)
        assert await channels_of(client, 3, OTHER_BIN_CARD) == Counter({"pinned": 3})
        assert await channels_of(client, 3, APPROVE) == Counter({"first": 3})
        assert sw.proc.poll() is None


CASCADE = '\n[routing]\ncascade_decline_codes = ["issuer_unavailable", "processing_error"]\n'


async def test_a_retryable_decline_cascades_to_the_next_channel_with_a_new_reference(
    sandbox_factory, switch_factory, redis_server
):
    first = sandbox_factory("first", "--decline-all", "issuer_unavailable")
    second = sandbox_factory("second")
    sw = switch_factory([(first, {"priority": 1}), (second, {"priority": 2})], extra=CASCADE)
    async with connect(sw) as client:
        p = (await client.Authorize(authorize(manual=True))).payment
        assert p.status == ps.PAYMENT_STATUS_AUTHORIZED
        assert p.channel == "second"
        [declined] = first.received("authorize")
        [approved] = second.received("authorize")
        assert declined["reference"] != approved["reference"]
        # The declined attempt stays on the payment's record...
        events = [(e.status, e.channel_reference) for e in p.events]
        assert events == [
            (ps.PAYMENT_STATUS_DECLINED, declined["reference"]),
            (ps.PAYMENT_STATUS_AUTHORIZED, approved["reference"]),
        ]
        # ...and follow-ups go to the channel that approved, under its reference.
        captured = await client.Capture(
            gw.CaptureRequest(idempotency_key=key(), payment_id=p.id, amount=money(1000))
        )
        assert captured.payment.status == ps.PAYMENT_STATUS_CAPTURED
        [capture] = second.received("capture")
        assert capture["original_reference"] == approved["reference"]
    # The journal has the first channel's decline, so analytics counts it.
    r = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        entries = [f for _, f in await r.xrange("ps:{m:m_dev}:journal") if f["pid"] == p.id]
    finally:
        await r.aclose()
    assert [(e["channel"], e["status"]) for e in entries] == [
        ("first", "DECLINED"),
        ("second", "AUTHORIZED"),
        ("second", "CAPTURED"),
    ]
    assert entries[0]["decline"] == "12"  # ISSUER_UNAVAILABLE


async def test_other_declines_and_unknown_outcomes_never_cascade(sandbox_factory, switch_factory):
    first = sandbox_factory("first")
    second = sandbox_factory("second")
    sw = switch_factory(
        [(first, {"priority": 1, "timeout_ms": 300}), (second, {"priority": 2})], extra=CASCADE
    )
    async with connect(sw) as client:
        p = (await client.Authorize(authorize(number=DECLINE))).payment
        assert (p.status, p.channel) == (ps.PAYMENT_STATUS_DECLINED, "first")
        p = (await client.Authorize(authorize(number=TIMEOUT))).payment
        assert (p.status, p.channel) == (ps.PAYMENT_STATUS_PENDING, "first")
        # The timed-out authorization was approved upstream: sending it elsewhere would have
        # charged the card twice. The reconciler learns the outcome from the first channel.
        deadline = time.monotonic() + 15
        while p.status == ps.PAYMENT_STATUS_PENDING:
            assert time.monotonic() < deadline, "the unknown outcome was never resolved"
            await asyncio.sleep(0.2)
            p = (await client.GetPayment(gw.GetPaymentRequest(payment_id=p.id))).payment
        assert (p.status, p.channel) == (ps.PAYMENT_STATUS_CAPTURED, "first")
    assert second.received("authorize") == []


async def routes_explain(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "switch",
        "routes",
        "explain",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def test_routes_explain_shows_the_order_and_the_reasons(sandbox_factory, switch_factory):
    cheap = sandbox_factory("cheap")
    dear = sandbox_factory("dear")
    euro = sandbox_factory("euro", "--currencies", "EUR")
    broken = sandbox_factory("broken", "--unavailable")
    sw = switch_factory(
        [(cheap, {}), (dear, {}), (euro, {}), (broken, {"priority": 1})],
        extra=(
            '\n[routing]\nstrategy = "least_cost"\nsync_interval_ms = 100\n'
            "[routing.breaker]\nfailures = 1\ncooldown_ms = 60000\n"
            '[[routing.fees]]\nchannel = "dear"\ncurrency = "USD"\npercent_bp = 290\n'
            '[[routing.fees]]\nchannel = "cheap"\ncurrency = "USD"\npercent_bp = 100\n'
            '[[routing.rules]]\nname = "bank_x"\nbins = ["411111"]\nchannels = ["dear"]\n'
            'mode = "prefer"\n'
        ),
    )
    async with connect(sw) as client:
        # The first payment meets broken's refusal (its breaker opens), then goes to cheap.
        assert (await client.Authorize(authorize())).payment.channel == "cheap"
    await asyncio.sleep(0.5)  # the switch publishes its breaker states every 100 ms

    text = await routes_explain("--config", str(sw.config), "--currency", "USD", "--amount", "1000")
    lines = [line.strip() for line in text.splitlines()]
    assert "rule: none matches" in lines
    order = [line.split()[1] for line in lines if line[:2] in ("1.", "2.", "3.")]
    assert order == ["broken", "cheap", "dear"]  # this process's own breakers are fresh
    assert any("fee 10 minor units" in line for line in lines)
    assert "capability mismatch: no USD" in lines
    assert any("breaker of" in line and "open on 1 running switch" in line for line in lines)

    text = await routes_explain(
        "--config", str(sw.config), "--currency", "USD", "--amount", "1000", "--bin", "411111"
    )
    lines = [line.strip() for line in text.splitlines()]
    assert "rule: bank_x (prefer dear)" in lines
    order = [line.split()[1] for line in lines if line[:2] in ("1.", "2.", "3.")]
    assert order == ["dear", "broken", "cheap"]


async def test_when_the_next_channel_cannot_take_a_cascade_the_first_decline_stands(
    sandbox_factory, switch_factory
):
    first = sandbox_factory("first", "--decline-all", "processing_error")
    second = sandbox_factory("second", "--unavailable")
    sw = switch_factory([(first, {"priority": 1}), (second, {"priority": 2})], extra=CASCADE)
    async with connect(sw) as client:
        request = authorize()
        p = (await client.Authorize(request)).payment
        assert (p.status, p.channel) == (ps.PAYMENT_STATUS_DECLINED, "first")
        assert p.decline.code == 13  # PROCESSING_ERROR, the first channel's answer
        [refused] = second.received("authorize")
        assert [(e.status, e.channel_reference) for e in p.events] == [
            (ps.PAYMENT_STATUS_DECLINED, first.received("authorize")[0]["reference"]),
            (ps.PAYMENT_STATUS_FAILED, refused["reference"]),
        ]
        again = (await client.Authorize(request)).payment  # the same key replays the answer
        assert (again.id, again.status) == (p.id, ps.PAYMENT_STATUS_DECLINED)
