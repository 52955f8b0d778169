"""The card worker and the simulator as real processes, driven over ChannelService gRPC."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from adapters.card import testcards
from adapters.sdk import convert
from adapters.sdk.types import (
    AuthorizeRequest,
    Card,
    DeclineCode,
    Money,
    OperationResult,
    OperationStatus,
    OperationType,
)
from payswitch.channel.v1 import channel_service_pb2 as ch
from payswitch.channel.v1 import channel_service_pb2_grpc as ch_grpc
from tests.integration.card.cardprocs import CardStack, channel, inquire
from tests.unit.card.cardkit import IsoSocket, auth, capture, refund, void

APPROVED = OperationStatus.APPROVED
DECLINED = OperationStatus.DECLINED
PENDING = OperationStatus.PENDING


async def authorize(stub: ch_grpc.ChannelServiceStub, request: AuthorizeRequest) -> OperationResult:
    response = await stub.Authorize(convert.authorize_request_to_proto(request), timeout=10)
    return convert.result_from_proto(response.result)


async def test_approve_partial_capture_and_refund(shared_stack: CardStack) -> None:
    async with channel(shared_stack.worker) as stub:
        approved = await authorize(stub, auth("g-a1", testcards.APPROVE, 5000, "GBP"))
        assert approved.status is APPROVED and approved.authorization_code
        cap = await stub.Capture(
            convert.capture_request_to_proto(capture("g-c1", "g-a1", 3000, 5000, "GBP"))
        )
        assert convert.result_from_proto(cap.result).status is APPROVED
        ref = await stub.Refund(
            convert.refund_request_to_proto(refund("g-r1", "g-a1", 1000, 3000, "GBP"))
        )
        assert convert.result_from_proto(ref.result).status is APPROVED
    [host] = shared_stack.simulator.purchases(approved.upstream_reference)
    assert (host.amount, host.captured, host.refunded, host.reversed) == (5000, 3000, 1000, False)


DECLINE_CASES = [
    ("05", DeclineCode.DO_NOT_HONOR),
    ("51", DeclineCode.INSUFFICIENT_FUNDS),
    ("43", DeclineCode.STOLEN_CARD),
    ("91", DeclineCode.ISSUER_UNAVAILABLE),
]


@pytest.mark.parametrize(("code", "decline"), DECLINE_CASES)
async def test_declines_are_results_not_errors(
    shared_stack: CardStack, code: str, decline: DeclineCode
) -> None:
    async with channel(shared_stack.worker) as stub:
        result = await authorize(stub, auth(f"g-d{code}", testcards.DECLINES[code]))
    assert (result.status, result.decline_code, result.raw_code) == (DECLINED, decline, code)


async def test_void_releases_the_authorization(shared_stack: CardStack) -> None:
    async with channel(shared_stack.worker) as stub:
        approved = await authorize(stub, auth("g-a2", testcards.APPROVE, 700, "CNY"))
        voided = await stub.Void(convert.void_request_to_proto(void("g-v2", "g-a2", 700, "CNY")))
        assert convert.result_from_proto(voided.result).status is APPROVED
    [host] = shared_stack.simulator.purchases(approved.upstream_reference)
    assert host.reversed and host.captured == 0


async def test_same_reference_twice_charges_once(shared_stack: CardStack) -> None:
    async with channel(shared_stack.worker) as stub:
        first, second = await asyncio.gather(
            authorize(stub, auth("g-dup", testcards.APPROVE, 900)),
            authorize(stub, auth("g-dup", testcards.APPROVE, 900)),
        )
    assert first == second and first.status is APPROVED
    assert len(shared_stack.simulator.purchases(first.upstream_reference)) == 1


async def test_no_answer_is_pending_then_reversed_and_announced(shared_stack: CardStack) -> None:
    async with channel(shared_stack.worker) as stub:
        events = stub.WatchEvents(ch.WatchEventsRequest())
        try:
            result = await authorize(stub, auth("g-n1", testcards.NO_ANSWER, 1500))
            assert result.status is PENDING
            async with asyncio.timeout(15):
                async for event in events:
                    if event.reference == "g-n1":
                        break
            announced = convert.event_from_proto(event)
            assert announced.operation is OperationType.AUTHORIZE
            assert announced.result.status is DECLINED and announced.result.raw_code == "68"
        finally:
            events.cancel()
        assert (await inquire(stub, "g-n1")).status is DECLINED
    [host] = shared_stack.simulator.purchases(result.upstream_reference)
    assert host.reversed  # the host had approved it; nothing stays charged


async def test_bad_input_is_invalid_argument_and_never_sent(shared_stack: CardStack) -> None:
    bad = AuthorizeRequest(
        "g-b1", "m1", Money(100, "USD"), Card("4000000000000002", 13, 2031, "1"), False
    )
    async with channel(shared_stack.worker) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await authorize(stub, bad)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert (await inquire(stub, "g-b1")).status is OperationStatus.NOT_FOUND


async def test_garbage_at_the_simulator_process_is_refused_without_a_crash(
    shared_stack: CardStack,
) -> None:
    sock = await IsoSocket.connect(shared_stack.simulator.port)
    try:
        await sock.send_raw(b"\x00\x24" + b"0100" + b"F" * 32)  # a bitmap naming every field
        reply = await sock.recv()
        assert reply["t"] == "0110" and reply["39"] == "30"
        await sock.send_raw(b"\x00\x90" + b"0200" + b"3020")  # truncated, then silence
        assert await sock.closed_by_peer()
    finally:
        await sock.close()
    assert shared_stack.simulator.alive()
    async with channel(shared_stack.worker) as stub:
        assert (await authorize(stub, auth("g-after", testcards.APPROVE))).status is APPROVED


async def test_worker_serves_health_and_describe(shared_stack: CardStack) -> None:
    async with channel(shared_stack.worker) as stub:
        described = await stub.Describe(ch.DescribeRequest(), timeout=5)
    assert described.name == "card" and "JPY" in described.currencies
    assert described.max_amount_minor == 999_999_999_999
