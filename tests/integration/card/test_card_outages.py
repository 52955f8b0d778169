"""Outages with real processes: a killed simulator, a killed worker, a host that sends garbage."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import pytest

from adapters.card import testcards
from adapters.card.host import load_state
from adapters.card.spec import Message
from adapters.sdk import convert
from adapters.sdk.types import AuthorizeRequest, OperationResult, OperationStatus
from payswitch.channel.v1 import channel_service_pb2 as ch
from payswitch.channel.v1 import channel_service_pb2_grpc as ch_grpc
from tests.integration.card.cardprocs import CardStack, channel, inquire, settled
from tests.unit.card.cardkit import FakeHost, answer, auth, eventually, write

APPROVED = OperationStatus.APPROVED
DECLINED = OperationStatus.DECLINED
PENDING = OperationStatus.PENDING
StackFactory = Callable[..., CardStack]


async def authorize(stub: ch_grpc.ChannelServiceStub, request: AuthorizeRequest) -> OperationResult:
    response = await stub.Authorize(convert.authorize_request_to_proto(request), timeout=10)
    return convert.result_from_proto(response.result)


async def kill_with_slow_request_in_flight(
    stack: CardStack, stub: ch_grpc.ChannelServiceStub
) -> str:
    """Send an authorization the host approves slowly, kill the host once it has it."""
    in_flight = asyncio.ensure_future(authorize(stub, auth("k-slow", testcards.SLOW, 4200)))
    await eventually(
        lambda: any(r.behaviour == "slow" for r in load_state(stack.simulator.state).values())
    )
    stack.simulator.kill()
    result = await in_flight
    assert result.status is PENDING  # approved by the host, answer lost: unknown, not approved
    return result.upstream_reference


async def test_killed_simulator_gets_the_reversal_when_it_returns(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory()
    stack.simulator.start()
    stack.worker.start()
    async with channel(stack.worker) as stub:
        kept = await authorize(stub, auth("k-kept", testcards.APPROVE, 1000))
        assert kept.status is APPROVED
        rrn = await kill_with_slow_request_in_flight(stack, stub)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await authorize(stub, auth("k-down", testcards.APPROVE))
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE  # certainly not sent
        assert (await inquire(stub, "k-down")).status is OperationStatus.NOT_FOUND
        assert (await inquire(stub, "k-slow")).status is PENDING
        stack.simulator.start()  # same port, same memory
        final = await settled(stub, "k-slow")
        assert final.status is DECLINED and final.raw_code == "68"
        after = await authorize(stub, auth("k-after", testcards.APPROVE))
        assert after.status is APPROVED
        assert (await inquire(stub, "k-kept")).status is APPROVED
    [reversed_one] = stack.simulator.purchases(rrn)
    assert reversed_one.reversed  # approved once, then released: not charged
    [kept_one] = stack.simulator.purchases(kept.upstream_reference)
    assert not kept_one.reversed
    assert testcards.SLOW not in stack.worker.log_text()


async def test_reversal_is_delivered_from_the_saf_file_after_a_worker_crash(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory()
    stack.simulator.start()
    stack.worker.start()
    async with channel(stack.worker) as stub:
        rrn = await kill_with_slow_request_in_flight(stack, stub)
    stack.worker.kill()
    assert testcards.SLOW not in stack.worker.saf_file.read_text()
    stack.worker.start()  # the host is still down: the worker starts anyway
    async with channel(stack.worker) as stub:
        assert (await inquire(stub, "k-slow")).status is PENDING
        stack.simulator.start()
        final = await settled(stub, "k-slow")
        assert final.status is DECLINED
        # The same reference again is not sent again: it answers the settled outcome.
        assert (await authorize(stub, auth("k-slow", testcards.SLOW, 4200))) == final
    [record] = stack.simulator.purchases(rrn)
    assert record.reversed


def garbage_host() -> FakeHost:
    """Answers each authorization by its amount: garbage, a truncated frame, or a lie."""

    async def script(doc: Message, writer: asyncio.StreamWriter) -> None:
        if doc["t"] != "0100":
            await write(writer, answer(doc, "00"))
        elif doc["4"].endswith("1"):
            await write(writer, b"\x00\x1c" + b"0110" + b"not an iso 8583 body....")
        elif doc["4"].endswith("2"):
            await write(writer, b"\x00\x64" + b"0110" + b"7020")
            writer.close()
        else:
            await write(writer, answer(doc, "00", **{"38": "ABC123", "4": "000000000009"}))

    return FakeHost(script)


async def test_garbage_from_the_acquirer_never_approves(stack_factory: StackFactory) -> None:
    host = garbage_host()
    port = await host.start()
    stack = stack_factory(acquirer_port=port)
    try:
        await asyncio.to_thread(stack.worker.start)
        async with channel(stack.worker) as stub:
            for n in (1, 2, 3):
                # The truncated frame (2) costs the connection: wait for it to come back.
                await eventually(lambda n=n: host.sign_ons >= (2 if n == 3 else 1))
                result = await authorize(stub, auth(f"gb-{n}", testcards.APPROVE, n))
                assert result.status is PENDING
            for n in (1, 2, 3):
                assert (await settled(stub, f"gb-{n}")).status is DECLINED
            health = await stub.Describe(ch.DescribeRequest(), timeout=5)
            assert health.name == "card"
        reversed_stans = {d["11"] for d in host.requests if d["t"] in ("0400", "0420", "0421")}
        assert {d["11"] for d in host.requests if d["t"] == "0100"} == reversed_stans
        assert host.sign_ons >= 2  # the truncated frame cost a connection, which came back
        assert stack.worker.alive()
    finally:
        await host.stop()
