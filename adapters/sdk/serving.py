"""A TCP stream server that closes every connection it accepted, for simulators and listeners.

`asyncio.start_server` runs a coroutine per connection, but on Python 3.11 its server's
close() leaves the connections open, and one accepted in the turn before close() fails to get
its transport (an assertion in `Server._attach`, logged only in debug mode): its socket stays
open until collected (a ResourceWarning), and the peer waits for an answer that never comes.
`StreamServer` knows each connection from the moment its transport is made, and its close()
stops accepting, lets the accepts already under way finish, then ends every connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

# How long close() lets cancelled connections end cleanly before it aborts them.
CLOSE_WAIT_S = 2.0


class StreamServer:
    """Runs `serve(reader, writer)` for each connection; the connection is closed when it
    returns. close() cancels the ones still running and closes any not yet started."""

    def __init__(self, serve: Serve) -> None:
        self._serve = serve
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._transports: set[asyncio.BaseTransport] = set()
        self._closing = False

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0 picks a free port); returns the port."""
        self._closing = False
        loop = asyncio.get_running_loop()

        def connection() -> _TrackedProtocol:
            # What asyncio.start_server builds, with the transport kept from connection_made on.
            return _TrackedProtocol(asyncio.StreamReader(loop=loop), self._run, self)

        self._server = await loop.create_server(connection, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        self._closing = True
        server, self._server = self._server, None
        if server is not None:
            # Stop watching the listening sockets first, and give an accept already under way
            # the turns it needs to make its transport (the turn after the accept), so that
            # Server.close() finds no accept in progress. (uvloop ignores remove_reader for its
            # servers' sockets and has no such race; a connection it makes from here on is
            # closed in connection_made.)
            loop = asyncio.get_running_loop()
            for sock in server.sockets:
                loop.remove_reader(sock.fileno())
            for _ in range(3):
                await asyncio.sleep(0)
            server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=CLOSE_WAIT_S)
            if pending:
                # A handler that waits for its writes to flush to a peer that reads nothing
                # would wait forever: drop those connections' unsent bytes.
                for transport in list(self._transports):
                    if isinstance(transport, asyncio.WriteTransport):
                        transport.abort()
                await asyncio.wait(pending)
        for transport in list(self._transports):
            transport.close()  # accepted, but its task had not started
        if server is not None:
            await server.wait_closed()

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            # Only close() cancels a connection. The stream machinery asks a finished
            # connection task for its exception, so end it normally rather than cancelled.
            if not self._closing:
                raise
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()


class _TrackedProtocol(asyncio.StreamReaderProtocol):
    """A stream connection its server knows of from connection_made to connection_lost, and
    closes at once if it is made after the server began to close (an accept in progress then
    still completes a few turns of the loop later)."""

    def __init__(self, reader: asyncio.StreamReader, serve: Serve, owner: StreamServer) -> None:
        super().__init__(reader, serve)
        self._owner = owner
        self._own: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._owner._closing:
            transport.close()
            return
        self._own = transport
        self._owner._transports.add(transport)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._own is None:
            return  # refused in connection_made: nothing was set up
        self._owner._transports.discard(self._own)
        super().connection_lost(exc)
