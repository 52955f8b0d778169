"""Velocity limits through real switches: counted in Redis, shared by every switch process."""

from __future__ import annotations

import asyncio

from payswitch.common.v1 import decline_code_pb2, payment_status_pb2
from payswitch.gateway.v1 import payment_pb2
from tests.integration.risk.conftest import pay, velocity_rule
from tests.integration.switch.conftest import connect

OTHER_CARD = "5555555555554444"


async def test_the_card_over_its_count_is_rejected_across_two_switches_until_the_window_passes(
    sandbox_factory, switch_factory
):
    sandbox = sandbox_factory()
    rule = velocity_rule("card_3_per_4s", window_s=4, max_count=3)
    first = switch_factory([(sandbox, {})], extra=rule)
    second = switch_factory([(sandbox, {})], extra=rule)
    async with connect(first) as a, connect(second) as b:
        allowed = [await pay(a), await pay(b), await pay(a)]
        assert [p.status for p in allowed] == [payment_status_pb2.PAYMENT_STATUS_CAPTURED] * 3
        assert all(p.risk.decision == payment_pb2.RISK_DECISION_ALLOW for p in allowed)

        fourth = await pay(b)
        assert fourth.status == payment_status_pb2.PAYMENT_STATUS_DECLINED
        assert fourth.decline.code == decline_code_pb2.DECLINE_CODE_RISK_REJECTED
        assert fourth.decline.raw_code == "card_3_per_4s"
        assert fourth.risk.decision == payment_pb2.RISK_DECISION_REJECT
        assert fourth.risk.rule == "card_3_per_4s"
        assert "4242" not in fourth.decline.message + fourth.status_message
        # The other switch counts the same card the same way; another card is not limited.
        assert (await pay(a)).status == payment_status_pb2.PAYMENT_STATUS_DECLINED
        other = await pay(a, number=OTHER_CARD)
        assert other.status == payment_status_pb2.PAYMENT_STATUS_CAPTURED

        authorized = {r["reference"] for r in sandbox.received("authorize")}
        assert len(authorized) == 4  # the three allowed, the other card; no rejected one
        assert not any(fourth.id in ref for ref in authorized)

        await asyncio.sleep(4.1)  # the whole window passes
        after = await pay(b)
        assert after.status == payment_status_pb2.PAYMENT_STATUS_CAPTURED


async def test_a_merchant_total_amount_limit_counts_amounts_not_payments(
    sandbox_factory, switch_factory
):
    sandbox = sandbox_factory()
    rule = (
        '\n[[risk.velocity]]\nname = "shop_usd_total"\nscope = "merchant"\nwindow_s = 60\n'
        'max_amount_minor = 5000\ncurrency = "USD"\n'
    )
    switch = switch_factory([(sandbox, {})], extra=rule)
    async with connect(switch) as client:
        assert (await pay(client, 3000)).status == payment_status_pb2.PAYMENT_STATUS_CAPTURED
        over = await pay(client, 2500, number=OTHER_CARD)
        assert over.status == payment_status_pb2.PAYMENT_STATUS_DECLINED
        assert over.risk.rule == "shop_usd_total"
        # A rejected payment is not counted: what is left still fits.
        fits = await pay(client, 2000, number=OTHER_CARD)
        assert fits.status == payment_status_pb2.PAYMENT_STATUS_CAPTURED
        # Another currency is not added to the USD total.
        eur = await pay(client, 9000, currency="EUR")
        assert eur.status == payment_status_pb2.PAYMENT_STATUS_CAPTURED
