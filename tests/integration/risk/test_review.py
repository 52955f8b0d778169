"""Risk reviews: a held payment is not sent; approval sends it exactly once, rejection never."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import redis

from payswitch.admin.v1 import admin_service_pb2 as pb
from payswitch.common.v1 import (
    decline_code_pb2,
    error_reason_pb2,
    payment_method_pb2,
    payment_status_pb2,
)
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from payswitch.gateway.v1 import payment_pb2
from switch.cards import Vault
from tests.integration.analytics.conftest import admin
from tests.integration.risk.conftest import amount_rule, eventually, get, pay
from tests.integration.switch.conftest import connect
from tests.integration.switch.helpers import APPROVE, error_info

REVIEW = amount_rule("big_usd", currency="USD", max_amount=100_000, action="review")
PENDING = payment_status_pb2.PAYMENT_STATUS_PENDING
CAPTURED = payment_status_pb2.PAYMENT_STATUS_CAPTURED
DECLINED = payment_status_pb2.PAYMENT_STATUS_DECLINED


def authorizations_of(sandbox, payment_id: str) -> int:
    return sum(1 for r in sandbox.received("authorize") if payment_id in str(r["reference"]))


async def rest(stream) -> list[tuple[int, int]]:
    """What WatchPayment shows until the payment stops changing: (status, review state)."""
    seen = []
    while (update := await stream.read()) is not grpc.aio.EOF:
        seen.append((update.payment.status, update.payment.risk.review))
    return seen


def journal_of(redis_server, payment_id: str) -> list[dict[str, str]]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        rows = client.xrange("ps:{m:m_dev}:journal")
    finally:
        client.close()
    return [fields for _, fields in rows if fields["pid"] == payment_id]


async def test_a_held_payment_is_sent_once_when_approved_even_if_approved_twice(
    sandbox_factory, switch_factory, analytics_factory, redis_server, tmp_path
):
    sandbox = sandbox_factory()
    first = switch_factory([(sandbox, {})], extra=REVIEW)
    second = switch_factory([(sandbox, {})], extra=REVIEW)
    analytics = analytics_factory(first.config)
    async with connect(first) as client, admin(analytics) as adm:
        held = await pay(client, 150_000)
        assert held.status == PENDING
        assert held.pending_reason == payment_pb2.PENDING_REASON_RISK_REVIEW
        assert held.risk.decision == payment_pb2.RISK_DECISION_REVIEW
        assert held.risk.rule == "big_usd"
        assert held.risk.review == payment_pb2.RISK_REVIEW_STATE_HELD
        # The held instrument is sealed so that an approval can send it, but without its CVC:
        # a CVC is never stored, not even sealed.
        raw = redis.Redis.from_url(redis_server.url)
        try:
            sealed = raw.hget(f"ps:{{m:m_dev}}:pay:{held.id}", "vault")
        finally:
            raw.close()
        vault = Vault(bytes.fromhex((tmp_path / "fp.key").read_text().strip()))
        kept = payment_method_pb2.PaymentMethod.FromString(
            vault.open(sealed.decode(), f"m_dev/{held.id}")
        )
        assert kept.card.number == APPROVE and kept.card.cvc == ""
        small = await pay(client, 5_000)
        assert small.status == CAPTURED

        listed = await adm.stub.ListRiskReviews(
            pb.ListRiskReviewsRequest(), metadata=adm.metadata, timeout=10
        )
        assert [(h.merchant_id, h.payment.id) for h in listed.payments] == [("m_dev", held.id)]
        await asyncio.sleep(0.5)  # several reconciler rounds of both switches
        assert authorizations_of(sandbox, held.id) == 0

        stream = client.WatchPayment(gw.WatchPaymentRequest(payment_id=held.id), timeout=20)
        first = await stream.read()
        assert first.payment.risk.review == payment_pb2.RISK_REVIEW_STATE_HELD
        watched = asyncio.create_task(rest(stream))
        approve = pb.ApproveRiskReviewRequest(merchant_id="m_dev", payment_id=held.id)
        answers = await asyncio.gather(
            adm.stub.ApproveRiskReview(approve, metadata=adm.metadata, timeout=10),
            adm.stub.ApproveRiskReview(approve, metadata=adm.metadata, timeout=10),
        )
        assert sorted(a.changed for a in answers) == [False, True]

        done = await eventually(lambda: get(client, held.id), lambda p: p.status != PENDING)
        assert done.status == CAPTURED
        assert done.risk.review == payment_pb2.RISK_REVIEW_STATE_FORWARDED
        assert done.pending_reason == payment_pb2.PENDING_REASON_UNSPECIFIED
        seen = await asyncio.wait_for(watched, 20)
        assert seen[-1] == (CAPTURED, payment_pb2.RISK_REVIEW_STATE_FORWARDED)
        again = await adm.stub.ApproveRiskReview(approve, metadata=adm.metadata, timeout=10)
        assert not again.changed
        await asyncio.sleep(0.5)
        assert authorizations_of(sandbox, held.id) == 1

        listed = await adm.stub.ListRiskReviews(
            pb.ListRiskReviewsRequest(merchant_id="m_dev"), metadata=adm.metadata, timeout=10
        )
        assert list(listed.payments) == []
        statuses = [
            (e["status"], e.get("risk"), e.get("review")) for e in journal_of(redis_server, held.id)
        ]
        assert statuses == [("PENDING", "REVIEW", "HELD"), ("CAPTURED", "REVIEW", "FORWARDED")]
    assert second.proc is not None and second.proc.poll() is None


async def test_a_rejected_review_is_declined_risk_rejected_and_never_sent(
    sandbox_factory, switch_factory, analytics_factory, redis_server
):
    sandbox = sandbox_factory()
    switch = switch_factory([(sandbox, {})], extra=REVIEW)
    analytics = analytics_factory(switch.config)
    async with connect(switch) as client, admin(analytics) as adm:
        held = await pay(client, 200_000)
        reject = pb.RejectRiskReviewRequest(merchant_id="m_dev", payment_id=held.id)
        reply = await adm.stub.RejectRiskReview(reject, metadata=adm.metadata, timeout=10)
        assert reply.changed
        assert reply.payment.status == DECLINED
        assert reply.payment.decline.code == decline_code_pb2.DECLINE_CODE_RISK_REJECTED
        assert reply.payment.decline.raw_code == "big_usd"
        assert reply.payment.risk.review == payment_pb2.RISK_REVIEW_STATE_REJECTED

        assert (await get(client, held.id)).status == DECLINED
        again = await adm.stub.RejectRiskReview(reject, metadata=adm.metadata, timeout=10)
        assert not again.changed
        approve = pb.ApproveRiskReviewRequest(merchant_id="m_dev", payment_id=held.id)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await adm.stub.ApproveRiskReview(approve, metadata=adm.metadata, timeout=10)
        assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert error_info(caught.value).reason == error_reason_pb2.ErrorReason.Name(
            error_reason_pb2.ERROR_REASON_INVALID_PAYMENT_STATE
        )
        await asyncio.sleep(0.5)
        assert authorizations_of(sandbox, held.id) == 0
        last = journal_of(redis_server, held.id)[-1]
        assert (last["status"], last["decline"], last["review"]) == ("DECLINED", "18", "REJECTED")


async def test_a_review_nobody_decides_in_time_is_rejected_and_its_instrument_dropped(
    sandbox_factory, switch_factory, redis_server
):
    sandbox = sandbox_factory()
    switch = switch_factory([(sandbox, {})], extra="\n[risk]\nreview_timeout_s = 1\n" + REVIEW)
    async with connect(switch) as client:
        held = await pay(client, 150_000)
        assert held.risk.review == payment_pb2.RISK_REVIEW_STATE_HELD
        # The switch sweeps held reviews every few seconds; this one is due after one.
        final = await eventually(lambda: get(client, held.id), lambda p: p.status == DECLINED)
    assert final.status == DECLINED
    assert final.decline.code == decline_code_pb2.DECLINE_CODE_RISK_REJECTED
    assert final.decline.raw_code == "big_usd"
    assert final.risk.review == payment_pb2.RISK_REVIEW_STATE_REJECTED
    assert "not decided in time" in final.status_message
    assert authorizations_of(sandbox, held.id) == 0
    raw = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        assert not raw.hget(f"ps:{{m:m_dev}}:pay:{held.id}", "vault")  # the sealed card is gone
        assert raw.zscore("ps:{m:m_dev}:review", held.id) is None
    finally:
        raw.close()
    assert [e["status"] for e in journal_of(redis_server, held.id)][-1] == "DECLINED"


async def test_an_approved_payment_no_channel_takes_in_time_loses_its_card_and_is_never_charged(
    sandbox_factory, switch_factory, analytics_factory, redis_server
):
    sandbox = sandbox_factory()
    # Sending an approved payment is tried for as long as a review may wait for its decision.
    switch = switch_factory([(sandbox, {})], extra="\n[risk]\nreview_timeout_s = 3\n" + REVIEW)
    analytics = analytics_factory(switch.config)
    pay_key = "ps:{m:m_dev}:pay:"
    raw = redis.Redis.from_url(redis_server.url, decode_responses=True)
    async with connect(switch) as client, admin(analytics) as adm:
        held = await pay(client, 150_000)
        sandbox.stop()  # the only channel goes away before the approval
        approve = pb.ApproveRiskReviewRequest(merchant_id="m_dev", payment_id=held.id)
        assert (
            await adm.stub.ApproveRiskReview(approve, metadata=adm.metadata, timeout=10)
        ).changed
        await asyncio.sleep(1.0)  # tried and not sent, the card still kept for the next try
        assert raw.hget(pay_key + held.id, "vault")

        given_up = await eventually(
            lambda: get(client, held.id),
            lambda p: p.risk.review == payment_pb2.RISK_REVIEW_STATE_FORWARDED,
        )
        assert given_up.risk.review == payment_pb2.RISK_REVIEW_STATE_FORWARDED
        assert given_up.status == PENDING
        assert "was not sent (no channel took it within 3 s)" in given_up.status_message
        assert not raw.hget(pay_key + held.id, "vault"), "the sealed card is dropped"

        # The channel comes back: asked about the payment (a try cut short by a restart could
        # have reached it), it never got it, so the payment fails with nothing charged.
        sandbox.start()
        final = await eventually(lambda: get(client, held.id), lambda p: p.status != PENDING)
        assert final.status == payment_status_pb2.PAYMENT_STATUS_FAILED
        await asyncio.sleep(0.5)
        assert authorizations_of(sandbox, held.id) == 0
    raw.close()


async def test_review_rpcs_refuse_bad_input_and_unknown_payments(
    sandbox_factory, switch_factory, analytics_factory
):
    switch = switch_factory([(sandbox_factory(), {})], extra=REVIEW)
    analytics = analytics_factory(switch.config)
    async with admin(analytics) as adm:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await adm.stub.ApproveRiskReview(
                pb.ApproveRiskReviewRequest(merchant_id="nobody", payment_id=""),
                metadata=adm.metadata,
                timeout=10,
            )
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await adm.stub.RejectRiskReview(
                pb.RejectRiskReviewRequest(merchant_id="m_dev", payment_id="pay_nothere"),
                metadata=adm.metadata,
                timeout=10,
            )
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await adm.stub.ListRiskReviews(pb.ListRiskReviewsRequest(), timeout=10)
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
