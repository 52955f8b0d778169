"""StreamServer: close() ends every connection, even one whose handler waits on a peer that
reads nothing, and a closed server can listen again."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from adapters.sdk.serving import StreamServer


async def test_close_ends_a_handler_stuck_writing_to_a_peer_that_reads_nothing() -> None:
    flooding = asyncio.Event()

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Like the card simulator: swallows the cancel, then waits for its bytes to flush.
        try:
            while True:
                writer.write(b"x" * 65536)
                flooding.set()
                await writer.drain()
        except asyncio.CancelledError:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    server = StreamServer(flood)
    port = await server.start("127.0.0.1", 0)
    with socket.create_connection(("127.0.0.1", port)) as peer:
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        async with asyncio.timeout(10):
            await flooding.wait()
            await asyncio.sleep(0.2)  # the kernel's buffers fill; drain() now waits
            await server.close()  # a hang here fails the test through the timeout


async def test_a_closed_server_can_listen_and_serve_again() -> None:
    async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()

    server = StreamServer(hello)
    await server.start("127.0.0.1", 0)
    await server.close()
    port = await server.start("127.0.0.1", 0)
    try:
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await reader.read() == b"hello"
            writer.close()
            await writer.wait_closed()
    finally:
        await server.close()
