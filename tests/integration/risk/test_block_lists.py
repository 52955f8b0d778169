"""Block lists: managed through AdminService, applied by every switch without a restart."""

from __future__ import annotations

import grpc
import pytest
import redis

from adapters.sandbox.testdata import wallet_code
from payswitch.admin.v1 import admin_service_pb2 as pb
from payswitch.common.v1 import decline_code_pb2, money_pb2, payment_method_pb2, payment_status_pb2
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from payswitch.gateway.v1 import payment_pb2
from tests.integration.analytics.conftest import admin
from tests.integration.risk.conftest import eventually, pay, velocity_rule
from tests.integration.switch.conftest import connect
from tests.integration.switch.helpers import APPROVE, key, violations

OTHER_CARD = "5555555555554444"
CAPTURED = payment_status_pb2.PAYMENT_STATUS_CAPTURED
DECLINED = payment_status_pb2.PAYMENT_STATUS_DECLINED
CARDS = pb.BLOCK_LIST_KIND_CARD_FINGERPRINT


async def test_a_blocked_card_is_rejected_and_allowed_again_once_removed(
    sandbox_factory, switch_factory, analytics_factory
):
    sandbox = sandbox_factory()
    switch = switch_factory([(sandbox, {})])
    analytics = analytics_factory(switch.config)
    async with connect(switch) as client, admin(analytics) as adm:
        before = await pay(client)
        assert before.status == CAPTURED
        added = await adm.stub.AddBlockListEntry(
            pb.AddBlockListEntryRequest(kind=CARDS, card_number=APPROVE, note="chargebacks"),
            metadata=adm.metadata,
            timeout=10,
        )
        # The admin fingerprints the number with the switches' key, and keeps only that.
        assert added.added and added.entry.value == before.payment_method.fingerprint
        listed = await adm.stub.ListBlockListEntries(
            pb.ListBlockListEntriesRequest(kind=CARDS), metadata=adm.metadata, timeout=10
        )
        assert [(e.value, e.note) for e in listed.entries] == [(added.entry.value, "chargebacks")]

        blocked = await eventually(lambda: pay(client), lambda p: p.status == DECLINED)
        assert blocked.status == DECLINED
        assert blocked.decline.code == decline_code_pb2.DECLINE_CODE_RISK_REJECTED
        assert blocked.risk.rule == "blocked_card"
        assert (await pay(client, number=OTHER_CARD)).status == CAPTURED

        removed = await adm.stub.RemoveBlockListEntry(
            pb.RemoveBlockListEntryRequest(kind=CARDS, value=added.entry.value),
            metadata=adm.metadata,
            timeout=10,
        )
        assert removed.removed
        allowed = await eventually(lambda: pay(client), lambda p: p.status == CAPTURED)
        assert allowed.status == CAPTURED
    assert not any(blocked.id in str(r["reference"]) for r in sandbox.received())


async def test_bin_ranges_and_wallet_buyers_are_blocked(
    sandbox_factory, switch_factory, analytics_factory
):
    switch = switch_factory([(sandbox_factory(), {})])
    analytics = analytics_factory(switch.config)
    code = wallet_code("0000")

    async def wallet_pay() -> payment_pb2.Payment:
        reply = await client.Authorize(
            gw.AuthorizeRequest(
                idempotency_key=key(),
                amount=money_pb2.Money(amount_minor=800, currency="CNY"),
                payment_method=payment_method_pb2.PaymentMethod(
                    alipay=payment_method_pb2.AlipayWallet(auth_code=code)
                ),
                capture_mode=payment_pb2.CAPTURE_MODE_AUTOMATIC,
            )
        )
        return reply.payment  # type: ignore[attr-defined, no-any-return]

    async with connect(switch) as client, admin(analytics) as adm:
        await adm.stub.AddBlockListEntry(
            pb.AddBlockListEntryRequest(kind=pb.BLOCK_LIST_KIND_BIN_RANGE, value="555500-555599"),
            metadata=adm.metadata,
            timeout=10,
        )
        blocked = await eventually(
            lambda: pay(client, number=OTHER_CARD), lambda p: p.status == DECLINED
        )
        assert blocked.risk.rule == "blocked_bin"
        assert (await pay(client)).status == CAPTURED  # 424242 is outside the range

        first = await wallet_pay()
        assert first.status == CAPTURED
        await adm.stub.AddBlockListEntry(
            pb.AddBlockListEntryRequest(
                kind=pb.BLOCK_LIST_KIND_WALLET_BUYER, value=first.payment_method.fingerprint
            ),
            metadata=adm.metadata,
            timeout=10,
        )
        buyer = await eventually(wallet_pay, lambda p: p.status == DECLINED)
        assert buyer.status == DECLINED
        assert buyer.risk.rule == "blocked_buyer"


async def test_block_list_rpcs_refuse_bad_entries_naming_the_field(
    sandbox_factory, switch_factory, analytics_factory
):
    switch = switch_factory([(sandbox_factory(), {})])
    analytics = analytics_factory(switch.config)
    bad = [
        (pb.AddBlockListEntryRequest(kind=CARDS, card_number="4242424242424241"), "card_number"),
        # A newline would have blocked a fingerprint no card ever has.
        (pb.AddBlockListEntryRequest(kind=CARDS, card_number=APPROVE + "\n"), "card_number"),
        (pb.AddBlockListEntryRequest(kind=CARDS, value="not-a-fingerprint"), "value"),
        (pb.AddBlockListEntryRequest(kind=pb.BLOCK_LIST_KIND_BIN_RANGE, value="41-42"), "value"),
        (pb.AddBlockListEntryRequest(value="4" * 64), "kind"),
        (
            pb.AddBlockListEntryRequest(kind=pb.BLOCK_LIST_KIND_BIN_RANGE, card_number=APPROVE),
            "card_number",
        ),
    ]
    async with admin(analytics) as adm:
        for request, field in bad:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await adm.stub.AddBlockListEntry(request, metadata=adm.metadata, timeout=10)
            assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert field in violations(caught.value)
        listed = await adm.stub.ListBlockListEntries(
            pb.ListBlockListEntriesRequest(kind=CARDS), metadata=adm.metadata, timeout=10
        )
        assert list(listed.entries) == []
    assert "4242424242424241" not in analytics.log_text()


def _wallet_request(code: str, buyer_id: str) -> gw.AuthorizeRequest:
    return gw.AuthorizeRequest(
        idempotency_key=key(),
        amount=money_pb2.Money(amount_minor=800, currency="CNY"),
        payment_method=payment_method_pb2.PaymentMethod(
            alipay=payment_method_pb2.AlipayWallet(auth_code=code, buyer_id=buyer_id)
        ),
        capture_mode=payment_pb2.CAPTURE_MODE_AUTOMATIC,
    )


async def test_a_wallet_buyer_is_counted_by_buyer_id_whatever_code_they_show(
    sandbox_factory, switch_factory
):
    rule = velocity_rule("buyer_2_per_min", window_s=60, max_count=2, scope="buyer")
    switch = switch_factory([(sandbox_factory(), {})], extra=rule)
    async with connect(switch) as client:

        async def pay_as(ending: str, buyer: str) -> payment_pb2.Payment:
            reply = await client.Authorize(_wallet_request(wallet_code(ending), buyer))
            return reply.payment  # type: ignore[attr-defined, no-any-return]

        # Payment codes are one-time: each payment shows a new one, the buyer stays the same.
        buyer = "2088000000000001"
        first, second = await pay_as("0001", buyer), await pay_as("0002", buyer)
        assert [first.status, second.status] == [CAPTURED, CAPTURED]
        assert first.payment_method.fingerprint == second.payment_method.fingerprint
        third = await pay_as("0003", buyer)
        assert (third.status, third.risk.rule) == (DECLINED, "buyer_2_per_min")
        assert (await pay_as("0004", "2088000000000002")).status == CAPTURED  # another buyer
        # Without a buyer id each code is its own buyer: the limit cannot see through them.
        assert [(await pay_as(e, "")).status for e in ("0006", "0007", "0008")] == [CAPTURED] * 3


async def test_a_wallet_buyer_id_is_blocked_through_the_admin_whatever_code_they_show(
    sandbox_factory, switch_factory, analytics_factory
):
    switch = switch_factory([(sandbox_factory(), {})])
    analytics = analytics_factory(switch.config)
    codes = iter(f"{n:04d}" for n in range(100, 200))
    async with connect(switch) as client, admin(analytics) as adm:

        async def pay_as(buyer: str) -> payment_pb2.Payment:
            reply = await client.Authorize(_wallet_request(wallet_code(next(codes)), buyer))
            return reply.payment  # type: ignore[attr-defined, no-any-return]

        added = await adm.stub.AddBlockListEntry(
            pb.AddBlockListEntryRequest(
                kind=pb.BLOCK_LIST_KIND_WALLET_BUYER, wallet_buyer_id="2088000000000009"
            ),
            metadata=adm.metadata,
            timeout=10,
        )
        assert "2088000000000009" not in added.entry.value  # stored as a fingerprint only
        blocked = await eventually(
            lambda: pay_as("2088000000000009"), lambda p: p.status == DECLINED
        )
        assert blocked.risk.rule == "blocked_buyer"
        assert blocked.payment_method.fingerprint == added.entry.value
        assert (await pay_as("2088000000000009")).status == DECLINED  # a new code changes nothing
        assert (await pay_as("2088000000000010")).status == CAPTURED

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await adm.stub.AddBlockListEntry(
                pb.AddBlockListEntryRequest(
                    kind=pb.BLOCK_LIST_KIND_CARD_FINGERPRINT, wallet_buyer_id="2088000000000011"
                ),
                metadata=adm.metadata,
                timeout=10,
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "wallet_buyer_id" in violations(caught.value)


async def test_a_bad_buyer_id_is_refused_naming_the_field(sandbox_factory, switch_factory):
    switch = switch_factory([(sandbox_factory(), {})])
    async with connect(switch) as client:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.Authorize(_wallet_request(wallet_code("0300"), "x" * 65))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "payment_method.alipay.buyer_id" in violations(caught.value)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.Authorize(_wallet_request(wallet_code("0301"), "buyer\n1"))
        assert "payment_method.alipay.buyer_id" in violations(caught.value)


async def test_a_full_redis_refuses_a_new_entry_as_unavailable(
    sandbox_factory, switch_factory, analytics_factory, redis_server
):
    switch = switch_factory([(sandbox_factory(), {})])
    analytics = analytics_factory(switch.config)
    request = pb.AddBlockListEntryRequest(kind=CARDS, card_number=APPROVE, note="chargebacks")
    async with admin(analytics) as adm:
        with redis.Redis.from_url(redis_server.url) as r:
            r.config_set("maxmemory-policy", "noeviction")
            r.config_set("maxmemory", 1)  # every write refused
            try:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await adm.stub.AddBlockListEntry(request, metadata=adm.metadata, timeout=10)
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            finally:
                r.config_set("maxmemory", 0)
        added = await adm.stub.AddBlockListEntry(request, metadata=adm.metadata, timeout=10)
        assert added.added
