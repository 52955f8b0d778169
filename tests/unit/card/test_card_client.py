"""The acquirer client against a scripted, misbehaving host on a real socket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from adapters.card import mapping, testcards
from adapters.card.client import AcquirerClient, ClientConfig, ConnectionLostError, StanCounter
from adapters.card.spec import Message
from adapters.sdk.errors import UpstreamTimeoutError, UpstreamUnavailableError
from adapters.sdk.types import OperationStatus
from tests.support import free_port
from tests.unit.card.cardkit import (
    AdapterFactory,
    FakeHost,
    Script,
    answer,
    auth,
    eventually,
    write,
)

ACCEPTOR = mapping.Acceptor("TERM0001", "MERCHANT000001")


@contextlib.asynccontextmanager
async def running(
    script: Script, **config: float
) -> AsyncIterator[tuple[FakeHost, AcquirerClient]]:
    host = FakeHost(script)
    port = await host.start()
    settings = {
        "response_timeout": 0.5,
        "frame_timeout": 0.2,
        "backoff_base": 0.02,
        "backoff_cap": 0.1,
    }
    client = AcquirerClient(
        ClientConfig(host="127.0.0.1", port=port, acceptor=ACCEPTOR, **{**settings, **config}),
        stan=StanCounter(),
    )
    await client.start()
    try:
        assert await client.wait_ready(2.0) or config.get("expect_not_ready")
        yield host, client
    finally:
        await client.stop()
        await host.stop()


def purchase(client: AcquirerClient, amount: int = 100) -> Message:
    stan = client.next_stan()
    return {"t": "0100", "3": "000000", "4": f"{amount:012d}", "11": stan, "41": "TERM0001"}


async def echo_back(doc: Message, writer: asyncio.StreamWriter) -> None:
    await write(writer, answer(doc, "00", **{"38": "A1B2C3"}))


async def test_answers_are_matched_by_stan_even_out_of_order() -> None:
    held: list[Message] = []

    async def reverse_pairs(doc: Message, writer: asyncio.StreamWriter) -> None:
        held.append(doc)
        if len(held) == 2:
            for d in reversed(held):
                await write(writer, answer(d))

    async with running(reverse_pairs) as (_, client):
        a, b = purchase(client, 111), purchase(client, 222)
        ra, rb = await asyncio.gather(client.request(a), client.request(b))
    assert (ra["11"], ra["4"]) == (a["11"], a["4"])
    assert (rb["11"], rb["4"]) == (b["11"], b["4"])


GARBAGE = [
    b"this is not an iso 8583 message",
    b"0110" + b"ZZZZZZZZZZZZZZZZ",  # bitmap not hex
    b"0110" + b"0000000000010000",  # bitmap names DE48, which this channel never uses
    b"0110" + b"0020000000000000" + b"12",  # DE11 cut short
    b"0110" + b"1020000000000000" + b"00000000AB12" + b"000001",  # DE4 not numeric
]


@pytest.mark.parametrize("payload", GARBAGE)
async def test_malformed_answer_is_ignored_and_the_connection_kept(payload: bytes) -> None:
    async def garbage_once(doc: Message, writer: asyncio.StreamWriter) -> None:
        if doc["4"] == "000000000001":
            await write(writer, len(payload).to_bytes(2, "big") + payload)
        else:
            await echo_back(doc, writer)

    async with running(garbage_once) as (host, client):
        with pytest.raises(UpstreamTimeoutError):
            await client.request(purchase(client, 1))
        good = await client.request(purchase(client, 2))
        assert good["39"] == "00" and host.sign_ons == 1


async def test_truncated_frame_fails_the_request_in_flight_and_reconnects() -> None:
    async def truncate_then_close(doc: Message, writer: asyncio.StreamWriter) -> None:
        if doc["4"] == "000000000001":
            await write(writer, b"\x00\x64" + b"0110" + b"7020")
            writer.close()
        else:
            await echo_back(doc, writer)

    async with running(truncate_then_close) as (host, client):
        with pytest.raises(ConnectionLostError):
            await client.request(purchase(client, 1))
        await eventually(lambda: client.ready and host.sign_ons == 2)
        assert (await client.request(purchase(client, 2)))["39"] == "00"


async def test_truncated_frame_that_stalls_drops_the_connection() -> None:
    async def truncate_and_stall(doc: Message, writer: asyncio.StreamWriter) -> None:
        await write(writer, b"\x00\x64" + b"0110")

    async with running(truncate_and_stall, response_timeout=5.0) as (_, client):
        with pytest.raises(ConnectionLostError):
            await client.request(purchase(client, 1))


async def test_drop_fails_every_request_in_flight_as_unknown_outcome() -> None:
    seen: list[Message] = []

    async def drop_on_third(doc: Message, writer: asyncio.StreamWriter) -> None:
        seen.append(doc)
        if len(seen) == 3:
            writer.close()

    async with running(drop_on_third, response_timeout=5.0) as (_, client):
        results = await asyncio.gather(
            *(client.request(purchase(client)) for _ in range(3)), return_exceptions=True
        )
    assert all(isinstance(r, ConnectionLostError) for r in results)


async def test_no_listener_means_not_sent() -> None:
    client = AcquirerClient(
        ClientConfig(host="127.0.0.1", port=free_port(), acceptor=ACCEPTOR, backoff_base=0.02),
        stan=StanCounter(),
    )
    await client.start()
    try:
        assert not await client.wait_ready(0.2)
        with pytest.raises(UpstreamUnavailableError):
            await client.request(purchase(client))
    finally:
        await client.stop()


async def test_idle_connection_is_echoed_and_replaced_when_echo_goes_unanswered() -> None:
    async with running(echo_back, echo_interval=0.05, response_timeout=0.2) as (host, _):
        await eventually(lambda: host.echoes >= 2)
        host.answer_echo = False
        await eventually(lambda: host.sign_ons == 2)


async def test_refused_sign_on_is_retried_with_backoff() -> None:
    host = FakeHost(echo_back)
    host.refuse_sign_ons = 2
    port = await host.start()
    config = ClientConfig(
        host="127.0.0.1", port=port, acceptor=ACCEPTOR, backoff_base=0.02, backoff_cap=0.05
    )
    client = AcquirerClient(config, stan=StanCounter())
    await client.start()
    try:
        assert await client.wait_ready(3.0)
        assert host.sign_ons == 3
    finally:
        await client.stop()
        await host.stop()


async def test_host_echo_is_answered() -> None:
    async with running(echo_back) as (host, _):
        writer = host.writers[0]
        await write(writer, {"t": "0800", "7": "0101120000", "11": "900001", "70": "301"})
        await eventually(lambda: any(r["t"] == "0810" for r in host.requests))
        reply = next(r for r in host.requests if r["t"] == "0810")
        assert reply["39"] == "00" and reply["11"] == "900001"


UNTRUSTWORTHY: dict[str, Callable[[Message], Message]] = {
    "amount changed": lambda d: answer(d, "00", **{"38": "123456", "4": "000000000001"}),
    "no response code": lambda d: {k: v for k, v in answer(d, "X").items() if k != "39"},
    "approval without auth id": lambda d: answer(d, "00"),
    "unknown response code": lambda d: answer(d, "Q7"),
    "RRN changed": lambda d: answer(d, "00", **{"38": "123456", "37": "999999999999"}),
}  # fmt: skip


@pytest.mark.parametrize("name", list(UNTRUSTWORTHY))
async def test_untrustworthy_answer_is_pending_then_reversed(
    name: str, make_adapter: AdapterFactory, tmp_path: Path
) -> None:
    async def script(doc: Message, writer: asyncio.StreamWriter) -> None:
        if doc["t"] == "0100":
            await write(writer, UNTRUSTWORTHY[name](doc))
        else:
            await write(writer, answer(doc, "00"))

    host = FakeHost(script)
    port = await host.start()
    try:
        adapter, events = await make_adapter(port)
        result = await adapter.authorize(auth("u-1", testcards.APPROVE))
        assert result.status is OperationStatus.PENDING
        assert (await events.wait_for("u-1")).result.status is OperationStatus.DECLINED
        reversal = next(r for r in host.requests if r["t"] == "0400")
        original = next(r for r in host.requests if r["t"] == "0100")
        assert reversal["90"][:20] == "0100" + original["11"] + original["7"]
        assert (reversal["11"], reversal["37"]) == (original["11"], original["37"])
    finally:
        await host.stop()
