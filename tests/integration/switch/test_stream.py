"""StreamPayments: many operations on one stream, each answered by id as its unary RPC would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2

from payswitch.common.v1 import payment_status_pb2 as ps
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from payswitch.gateway.v1 import gateway_service_pb2_grpc as gw_grpc
from tests.integration.switch.conftest import API_KEY
from tests.integration.switch.helpers import DECLINE, authorize, key, violations


async def test_a_stream_of_payments_is_answered_one_by_one(sandbox_factory, switch_factory):
    sb = sandbox_factory()
    sw = switch_factory([(sb, {})])
    repeated = authorize(777)
    requests = [gw.StreamPaymentsRequest(id=i, authorize=authorize(100 + i)) for i in range(1, 31)]
    requests.append(gw.StreamPaymentsRequest(id=31, authorize=authorize(5, number=DECLINE)))
    requests.append(gw.StreamPaymentsRequest(id=32, authorize=authorize(0)))  # bad amount
    requests.append(gw.StreamPaymentsRequest(id=33, authorize=repeated))
    requests.append(gw.StreamPaymentsRequest(id=34))  # no request at all
    async with grpc.aio.insecure_channel(sw.address) as chan:
        stub = gw_grpc.GatewayServiceStub(chan)
        call = stub.StreamPayments(
            iter(requests), metadata=(("authorization", f"Bearer {API_KEY}"),), timeout=30
        )
        answers = {a.id: a async for a in call}
        assert sorted(answers) == list(range(1, 35))
        for i in range(1, 31):
            p = answers[i].authorize.payment
            assert p.status == ps.PAYMENT_STATUS_CAPTURED
            assert p.amount.amount_minor == 100 + i
        assert answers[31].authorize.payment.status == ps.PAYMENT_STATUS_DECLINED
        bad = answers[32].error
        assert bad.code == code_pb2.INVALID_ARGUMENT
        violations = error_details_pb2.BadRequest()
        assert any(
            d.Unpack(violations)
            for d in bad.details
            if d.Is(error_details_pb2.BadRequest.DESCRIPTOR)
        )
        assert [v.field for v in violations.field_violations] == ["amount.amount_minor"]
        assert answers[34].error.code == code_pb2.INVALID_ARGUMENT

        # The same key again, now as a unary call: the stored answer, nothing sent twice.
        again = await stub.Authorize(repeated, metadata=(("authorization", f"Bearer {API_KEY}"),))
        assert again.payment == answers[33].authorize.payment
        capture = gw.StreamPaymentsRequest(
            id=1,
            capture=gw.CaptureRequest(
                idempotency_key=key(), payment_id=answers[1].authorize.payment.id
            ),
        )
        more = [
            a
            async for a in stub.StreamPayments(
                iter([capture]), metadata=(("authorization", f"Bearer {API_KEY}"),)
            )
        ]
        assert more[0].error.code == code_pb2.FAILED_PRECONDITION  # already captured automatically
    assert len(sb.received("authorize")) == 32  # 30 + the decline + the repeated key once


async def test_a_stream_without_a_key_is_refused(sandbox_factory, switch_factory):
    sw = switch_factory([(sandbox_factory(), {})])
    async with grpc.aio.insecure_channel(sw.address) as chan:
        # No request is sent: one written after the refusal fails on the client's side with
        # INTERNAL instead of the server's status, a race of the client library.
        call = gw_grpc.GatewayServiceStub(chan).StreamPayments(iter([]))
        try:
            _ = [a async for a in call]
            raise AssertionError("a stream without an API key was served")
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_batches_of_payments_are_each_answered_once_by_id(sandbox_factory, switch_factory):
    sb = sandbox_factory()
    sw = switch_factory([(sb, {})])
    first = [gw.StreamPaymentsRequest(id=i, authorize=authorize(100 + i)) for i in range(1, 21)]
    first.append(gw.StreamPaymentsRequest(id=21, authorize=authorize(0)))  # bad amount
    first.append(gw.StreamPaymentsRequest(id=22))  # no request at all
    second = [gw.StreamPaymentsRequest(id=i, authorize=authorize(100 + i)) for i in range(23, 33)]
    second.append(gw.StreamPaymentsRequest(id=33, authorize=authorize(5, number=DECLINE)))
    messages = [
        gw.StreamPaymentBatchesRequest(requests=first),
        gw.StreamPaymentBatchesRequest(requests=second),
    ]
    async with grpc.aio.insecure_channel(sw.address) as chan:
        call = gw_grpc.GatewayServiceStub(chan).StreamPaymentBatches(
            iter(messages), metadata=(("authorization", f"Bearer {API_KEY}"),), timeout=30
        )
        replies = [reply async for reply in call]
    answers = [a for reply in replies for a in reply.responses]
    assert sorted(a.id for a in answers) == list(range(1, 34))  # every id once, none twice
    by_id = {a.id: a for a in answers}
    for i in [*range(1, 21), *range(23, 33)]:
        p = by_id[i].authorize.payment
        assert (p.status, p.amount.amount_minor) == (ps.PAYMENT_STATUS_CAPTURED, 100 + i)
    assert by_id[21].error.code == code_pb2.INVALID_ARGUMENT
    assert by_id[22].error.code == code_pb2.INVALID_ARGUMENT
    assert by_id[33].authorize.payment.status == ps.PAYMENT_STATUS_DECLINED
    assert len(sb.received("authorize")) == 31  # 30 approvals and the decline, each once


async def test_a_batch_over_the_limit_is_refused_and_nothing_of_it_is_sent(
    sandbox_factory, switch_factory
):
    sb = sandbox_factory()
    sw = switch_factory([(sb, {})])
    huge = gw.StreamPaymentBatchesRequest(
        requests=[gw.StreamPaymentsRequest(id=i, authorize=authorize(100)) for i in range(1001)]
    )
    async with grpc.aio.insecure_channel(sw.address) as chan:
        call = gw_grpc.GatewayServiceStub(chan).StreamPaymentBatches(
            iter([huge]), metadata=(("authorization", f"Bearer {API_KEY}"),), timeout=30
        )
        try:
            _ = [reply async for reply in call]
            raise AssertionError("a batch of 1,001 requests was served")
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert violations(exc) == ["requests"]
    assert sb.received() == []


@pytest.mark.parametrize("method", ["StreamPayments", "StreamPaymentBatches"])
async def test_a_message_that_is_no_request_ends_the_stream_as_invalid_argument(
    sandbox_factory, switch_factory, method: str
):
    # Answered: what came before it. Not run: what comes after it, on a stream now refused.
    sb = sandbox_factory()
    sw = switch_factory([(sb, {})])
    first = gw.StreamPaymentsRequest(id=1, authorize=authorize(100))
    after = gw.StreamPaymentsRequest(id=3, authorize=authorize(300))
    if method == "StreamPaymentBatches":
        messages = [
            gw.StreamPaymentBatchesRequest(requests=[first]).SerializeToString(),
            b"\x0a\x7fshort",
            gw.StreamPaymentBatchesRequest(requests=[after]).SerializeToString(),
        ]
    else:
        messages = [first.SerializeToString(), b"\x0a\x7fshort", after.SerializeToString()]

    async def send() -> AsyncIterator[bytes]:
        for m in messages:
            yield m
            await asyncio.sleep(0.3)  # the first is answered before the garbage arrives

    async with grpc.aio.insecure_channel(sw.address) as chan:
        call = chan.stream_stream(f"/payswitch.gateway.v1.GatewayService/{method}")(
            send(), metadata=(("authorization", f"Bearer {API_KEY}"),), timeout=30
        )
        replies = []
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for reply in call:
                replies.append(reply)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violations(caught.value) == ["request"]
    assert len(replies) == 1
    assert [r["amount_minor"] for r in sb.received("authorize")] == [100]


@pytest.mark.parametrize("method", ["StreamPayments", "StreamPaymentBatches"])
async def test_an_id_already_in_flight_is_refused_and_not_run_then_free_once_answered(
    sandbox_factory, switch_factory, method: str
):
    # Two requests under one id would get two answers under that id, which the caller could not
    # tell apart: the second is refused while the first runs. Answered, the id is free again.
    sb = sandbox_factory("sandbox", "--latency-ms", "300")
    sw = switch_factory([(sb, {})])
    first = gw.StreamPaymentsRequest(id=7, authorize=authorize(100))
    twin = gw.StreamPaymentsRequest(id=7, authorize=authorize(200))
    later = gw.StreamPaymentsRequest(id=7, authorize=authorize(300))
    batched = method == "StreamPaymentBatches"

    def messages(*requests: gw.StreamPaymentsRequest) -> list[bytes]:
        if batched:
            return [gw.StreamPaymentBatchesRequest(requests=requests).SerializeToString()]
        return [r.SerializeToString() for r in requests]

    def answers_in(reply: bytes) -> list[gw.StreamPaymentsResponse]:
        if batched:
            return list(gw.StreamPaymentBatchesResponse.FromString(reply).responses)
        return [gw.StreamPaymentsResponse.FromString(reply)]

    both_answered = asyncio.Event()

    async def send() -> AsyncIterator[bytes]:
        for m in messages(first, twin):
            yield m
        await both_answered.wait()
        for m in messages(later):
            yield m

    answers: list[gw.StreamPaymentsResponse] = []
    async with grpc.aio.insecure_channel(sw.address) as chan:
        call = chan.stream_stream(f"/payswitch.gateway.v1.GatewayService/{method}")(
            send(), metadata=(("authorization", f"Bearer {API_KEY}"),), timeout=30
        )
        async for reply in call:
            answers += answers_in(reply)
            if len(answers) >= 2:
                both_answered.set()
        # The twin's key was never claimed: sent on its own now, it is a new payment.
        alone = await gw_grpc.GatewayServiceStub(chan).Authorize(
            twin.authorize, metadata=(("authorization", f"Bearer {API_KEY}"),), timeout=10
        )
    assert [a.id for a in answers] == [7, 7, 7]
    refusal, ran, again = answers
    assert refusal.error.code == code_pb2.INVALID_ARGUMENT  # at once: the first still runs
    bad = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad) for d in refusal.error.details if d.Is(bad.DESCRIPTOR))
    assert [v.field for v in bad.field_violations] == ["id"]
    assert "already in flight on this stream" in bad.field_violations[0].description
    assert ran.authorize.payment.amount.amount_minor == 100
    assert ran.authorize.payment.status == ps.PAYMENT_STATUS_CAPTURED
    assert again.authorize.payment.amount.amount_minor == 300
    assert again.authorize.payment.status == ps.PAYMENT_STATUS_CAPTURED
    assert (alone.payment.amount.amount_minor, alone.payment.status) == (
        200,
        ps.PAYMENT_STATUS_CAPTURED,
    )
    assert [r["amount_minor"] for r in sb.received("authorize")] == [100, 300, 200]
