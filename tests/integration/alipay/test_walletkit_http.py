"""The wallets' HTTP/1.1 client and server over real sockets: reuse, and each failure's meaning."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from adapters.sdk.errors import (
    AdapterError,
    InvalidResponseError,
    OutcomeUnknownError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from adapters.walletkit.httpclient import HttpClient
from adapters.walletkit.httpserver import HttpRequest, HttpServer, Reply
from tests.support import connect_as_it_stops, free_port


async def echo(request: HttpRequest) -> Reply:
    return Reply(
        200, request.method.encode() + b" " + request.target.encode() + b" " + request.body
    )


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    s = HttpServer(echo, host="127.0.0.1", port=0)
    await s.start()
    yield s
    await s.close()


async def test_requests_reuse_one_kept_alive_connection(server: HttpServer) -> None:
    client = HttpClient(f"http://127.0.0.1:{server.port}")
    try:
        for i in range(20):
            response = await client.request("POST", f"/x?i={i}", body=b"hello")
            assert response.body == f"POST /x?i={i} hello".encode()
        assert (client.connections_opened, server.connections_accepted) == (1, 1)
        await asyncio.gather(*(client.request("GET", "/") for _ in range(10)))
        assert client.connections_opened <= 10
    finally:
        await client.aclose()


async def test_a_connection_the_peer_closed_while_idle_costs_a_reconnect_not_a_failure() -> None:
    port = free_port()
    first = HttpServer(echo, host="127.0.0.1", port=port)
    await first.start()
    client = HttpClient(f"http://127.0.0.1:{port}")
    try:
        assert (await client.request("GET", "/a")).status == 200
        await first.close()  # drops the kept-alive connection
        second = HttpServer(echo, host="127.0.0.1", port=port)
        await second.start()
        try:
            assert (await client.request("GET", "/b")).body == b"GET /b "
            assert client.connections_opened == 2
        finally:
            await second.close()
    finally:
        await client.aclose()


async def test_nothing_listening_means_unavailable_and_certainly_not_sent() -> None:
    client = HttpClient(f"http://127.0.0.1:{free_port()}", connect_timeout=1.0)
    with pytest.raises(UpstreamUnavailableError):
        await client.request("GET", "/")
    await client.aclose()


async def test_no_answer_in_time_is_a_timeout(server: HttpServer) -> None:
    async def slow(request: HttpRequest) -> Reply:
        await asyncio.sleep(5)
        return Reply(200)

    s = HttpServer(slow, host="127.0.0.1", port=0)
    await s.start()
    client = HttpClient(f"http://127.0.0.1:{s.port}", timeout=0.2)
    try:
        with pytest.raises(UpstreamTimeoutError):
            await client.request("POST", "/", body=b"pay")
    finally:
        await client.aclose()
        await s.close()


RawPeer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def with_raw_peer(peer: RawPeer) -> AdapterError | bytes:
    """Run `peer` as the server side of one request; what the client got."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await peer(reader, writer)
        writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    client = HttpClient(f"http://127.0.0.1:{port}", timeout=2.0)
    try:
        return (await client.request("GET", "/")).body
    except AdapterError as exc:  # the test inspects which kind
        return exc
    finally:
        await client.aclose()
        listener.close()
        await listener.wait_closed()


async def test_a_dropped_connection_after_sending_is_an_unknown_outcome() -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        return None

    assert isinstance(await with_raw_peer(drop), OutcomeUnknownError)


async def test_a_truncated_body_is_an_unknown_outcome() -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")

    assert isinstance(await with_raw_peer(short), OutcomeUnknownError)


@pytest.mark.parametrize(
    "answer",
    [b"SMTP ready\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
     b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
     # Digits to str.isdigit() in latin-1 that int() refuses (superscript two, U+00B2).
     b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nx\r\n0\r\n\r\n",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x1\r\nx\r\n0\r\n\r\n"],
)  # fmt: skip
async def test_an_answer_that_is_not_http_is_invalid(answer: bytes) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(answer)

    assert isinstance(await with_raw_peer(garbage), InvalidResponseError)


async def test_chunked_answers_are_read() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
        )

    assert await with_raw_peer(chunked) == b"hello world"


@pytest.mark.parametrize("turns", range(8))
async def test_a_connection_accepted_as_the_server_closes_is_closed_too(turns: int) -> None:
    # A notification arriving while its listener stops: the server may have accepted the
    # connection and not yet run its task for it. Whatever the moment, close() must leave the
    # connection closed: the peer must not wait for an answer that never comes, and the
    # transport must not be left open (on 3.11 the window was turns 2-4).
    s = HttpServer(echo, host="127.0.0.1", port=0)
    await s.start()
    await connect_as_it_stops(s.port, s.close, turns)
