"""The switch's Exchange link against an SDK worker, over both transports: the Exchange socket the
worker advertises in Describe, and the Exchange RPC. Real sockets, real gRPC, no fakes."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from google.rpc import error_details_pb2

from adapters.sdk.errors import UpstreamUnavailableError
from adapters.sdk.framing import PREFACE, frame
from adapters.sdk.worker import Worker
from payswitch.channel.v1 import channel_service_pb2 as ch
from payswitch.channel.v1 import channel_service_pb2_grpc as ch_grpc
from switch.config import ChannelConfig
from switch.link import ExchangeLink, LinkBroken
from switch.pool import Pool
from tests.contract.test_sdk_worker import ScriptedAdapter, authorize
from tests.contract.workers import adapter_process


@dataclass
class Linked:
    adapter: ScriptedAdapter
    worker: Worker
    link: ExchangeLink


async def _described(stub: ch_grpc.ChannelServiceStub) -> str:
    return (await stub.Describe(ch.DescribeRequest(), timeout=5)).exchange_address


@pytest.fixture(params=["socket", "rpc"])
async def linked(request: pytest.FixtureRequest) -> AsyncIterator[Linked]:
    adapter = ScriptedAdapter()
    exchange = "auto" if request.param == "socket" else None
    worker = Worker(adapter, listen="127.0.0.1:0", grace_s=2.0, exchange_listen=exchange)
    port = await worker.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = ch_grpc.ChannelServiceStub(channel)
        link = ExchangeLink(stub=stub, address=f"127.0.0.1:{port}")  # type: ignore[arg-type]
        link.socket_address = await _described(stub)  # type: ignore[arg-type]
        await link.open()
        assert link.transport == request.param
        yield Linked(adapter, worker, link)
        await link.close()
    await worker.stop()


async def test_concurrent_operations_are_each_answered_under_their_own_id(linked: Linked) -> None:
    linked.adapter.script["r3"] = UpstreamUnavailableError("acquirer down")
    answers = await asyncio.gather(
        *(linked.link.send("authorize", authorize(f"r{i}"), 5.0) for i in range(40))
    )
    assert len(linked.adapter.received) == 40
    for i, answer in enumerate(answers):
        if i == 3:
            assert answer.HasField("error")
            info = error_details_pb2.ErrorInfo()
            assert answer.error.details[0].Unpack(info)
            assert info.reason == "ERROR_REASON_UPSTREAM_UNAVAILABLE"
        else:
            assert answer.result.status == ch.OPERATION_STATUS_APPROVED


async def test_the_socket_answers_an_empty_operation_invalid_without_calling_the_adapter() -> None:
    adapter = ScriptedAdapter()
    worker = Worker(adapter, listen="127.0.0.1:0", grace_s=1.0)
    port = await worker.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        address = await _described(ch_grpc.ChannelServiceStub(channel))  # type: ignore[arg-type]
    host, _, socket_port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(socket_port))
    empty = ch.ExchangeRequest(operations=[ch.ExchangeOperation(id=9)])
    writer.write(PREFACE + frame(empty.SerializeToString()))
    assert await reader.readexactly(len(PREFACE)) == PREFACE
    header = await reader.readexactly(5)
    body = await reader.readexactly(int.from_bytes(header[1:], "big"))
    reply = ch.ExchangeResponse.FromString(body)
    writer.close()
    await worker.stop()
    assert [a.id for a in reply.answers] == [9]
    assert reply.answers[0].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert adapter.received == []


async def test_operations_arriving_at_shutdown_are_refused_as_not_sent(linked: Linked) -> None:
    gate = linked.adapter.gate = asyncio.Event()
    first = asyncio.create_task(linked.link.send("authorize", authorize("r1"), 5.0))
    await asyncio.wait_for(linked.adapter.arrived.wait(), 5)
    stopping = asyncio.create_task(linked.worker.stop())
    await asyncio.sleep(0.2)
    if linked.link.transport == "socket":
        # The socket still takes the message and says the operation was not sent.
        late = await linked.link.send("authorize", authorize("r2"), 5.0)
        info = error_details_pb2.ErrorInfo()
        assert late.error.details[0].Unpack(info)
        assert info.reason == "ERROR_REASON_UPSTREAM_UNAVAILABLE"
    gate.set()
    assert (await first).result.status == ch.OPERATION_STATUS_APPROVED
    await stopping
    assert [r.reference for r in linked.adapter.received] == ["r1"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("transport", ["socket", "rpc"])
async def test_a_worker_killed_mid_flight_leaves_written_operations_unknown(
    transport: str,
) -> None:
    flags = ["--latency-ms", "3000"]
    if transport == "rpc":
        flags += ["--exchange-listen", "off"]
    with adapter_process("sandbox", *flags) as worker:
        async with grpc.aio.insecure_channel(worker.target) as channel:
            stub = ch_grpc.ChannelServiceStub(channel)
            link = ExchangeLink(stub=stub, address=worker.target)  # type: ignore[arg-type]
            advertised = await _described(stub)  # type: ignore[arg-type]
            assert bool(advertised) == (transport == "socket")
            link.socket_address = advertised
            await link.open()
            assert link.transport == transport
            sent = asyncio.create_task(link.send("authorize", authorize("r1"), 10.0))
            await asyncio.sleep(0.5)
            worker.signal(signal.SIGKILL)
            with pytest.raises(LinkBroken) as broken:
                await asyncio.wait_for(sent, 5)
            assert broken.value.written  # it went out: the outcome is unknown, not "not sent"
            assert not link.ready
            with pytest.raises(LinkBroken) as refused:
                await link.send("authorize", authorize("r2"), 1.0)
            assert not refused.value.written
            await link.close()


async def test_an_unreachable_socket_falls_back_to_the_rpc() -> None:
    adapter = ScriptedAdapter()
    worker = Worker(adapter, listen="127.0.0.1:0", grace_s=1.0)
    port = await worker.start()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nobody = closed.getsockname()[1]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        link = ExchangeLink(stub=ch_grpc.ChannelServiceStub(channel), address=f"127.0.0.1:{port}")  # type: ignore[arg-type]
        link.socket_address = f"127.0.0.1:{nobody}"
        await link.open()
        assert link.transport == "rpc"
        answer = await link.send("authorize", authorize("r1"), 5.0)
        assert answer.result.status == ch.OPERATION_STATUS_APPROVED
        await link.close()
    await worker.stop()


async def test_a_peer_that_is_not_a_worker_is_not_taken_for_one() -> None:
    async def http_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(http_server, "127.0.0.1", 0)
    other = server.sockets[0].getsockname()[1]
    adapter = ScriptedAdapter()
    worker = Worker(adapter, listen="127.0.0.1:0", grace_s=1.0)
    port = await worker.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        link = ExchangeLink(stub=ch_grpc.ChannelServiceStub(channel), address=f"127.0.0.1:{port}")  # type: ignore[arg-type]
        link.socket_address = f"127.0.0.1:{other}"
        await link.open()
        assert link.transport == "rpc"
        await link.close()
    await worker.stop()
    server.close()
    await server.wait_closed()


async def test_the_pool_finds_the_socket_through_describe_and_finds_it_again_after_a_restart() -> (
    None
):
    with adapter_process("sandbox") as worker:
        pool = Pool(
            [ChannelConfig(name="sandbox", endpoints=(worker.target,))], health_interval_s=0.2
        )
        await pool.start()
        (ep,) = pool.channels["sandbox"].endpoints
        assert ep.link.transport == "socket"
        first = ep.link.socket_address
        worker.signal(signal.SIGKILL)
        worker.proc.wait(10)  # type: ignore[union-attr]
        worker.start()  # the same gRPC port, a new socket port
        for _ in range(100):
            await asyncio.sleep(0.1)
            if ep.link.ready and ep.link.socket_address != first:
                break
        assert ep.link.transport == "socket" and ep.link.socket_address != first
        await pool.close()
