"""The worker's Exchange socket: the Exchange RPC's messages on a plain socket (see `framing`).

A Python gRPC process pays for every stream message with completion-queue events handed between
gRPC's threads and the event loop; on this socket a message is a `write` and a `data_received`.
Each operation is answered by the same code as on the RPC (`ChannelServicer.answer`); answers
ready in the same turn of the loop go out together in one message.

At shutdown the worker stops listening, answers operations that arrive from then on with
UNAVAILABLE (upstream unavailable: certainly not sent, so the switch may try another endpoint),
lets those in flight finish within the grace period, then closes the connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import cast

from google.protobuf.message import DecodeError

from adapters.sdk.framing import PREFACE, FrameError, FrameReader, frame
from payswitch.channel.v1 import channel_service_pb2 as ch

log = logging.getLogger("payswitch.worker")

Answer = Callable[[ch.ExchangeOperation], Awaitable[ch.ExchangeAnswer]]
Refuse = Callable[[int], ch.ExchangeAnswer]


class _Connection(asyncio.Protocol):
    def __init__(self, owner: ExchangeSocket) -> None:
        self._owner = owner
        self._reader = FrameReader()
        self._transport: asyncio.Transport | None = None
        self._ready: list[ch.ExchangeAnswer] = []
        self._flush_scheduled = False
        self.running: set[asyncio.Task[None]] = set()
        # Kept: asyncio.get_running_loop() is a getpid() system call per use on 3.11.
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast(asyncio.Transport, transport)
        self._owner.connections.add(self)

    def data_received(self, data: bytes) -> None:
        greeted = self._reader.greeted
        try:
            messages = self._reader.feed(data)
            if not greeted and self._reader.greeted:
                self._write(PREFACE)
            for message in messages:
                self._take(ch.ExchangeRequest.FromString(message))
        except (FrameError, DecodeError) as exc:
            log.warning("exchange socket: bad input, closing", extra={"error": str(exc)})
            self.close()

    def _take(self, batch: ch.ExchangeRequest) -> None:
        loop = self._loop
        for req in batch.operations:
            if self._owner.closing:
                self._answered(self._owner.refuse(req.id))
                continue
            task = loop.create_task(self._one(req))
            self.running.add(task)
            task.add_done_callback(self.running.discard)

    async def _one(self, req: ch.ExchangeOperation) -> None:
        self._answered(await self._owner.answer(req))

    def _answered(self, answer: ch.ExchangeAnswer) -> None:
        self._ready.append(answer)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        answers, self._ready = self._ready, []
        if answers:
            self._write(frame(ch.ExchangeResponse(answers=answers).SerializeToString()))

    def _write(self, data: bytes) -> None:
        # Gone: the switch holds these operations as unknown outcomes and inquires.
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        # Operations already running finish (the upstream may be acting on them); their answers
        # have nowhere to go.
        self._transport = None
        self._owner.connections.discard(self)


class ExchangeSocket:
    """Serves Exchange on a plain TCP or Unix socket; `address` once started."""

    def __init__(self, answer: Answer, refuse: Refuse) -> None:
        """`answer` answers an operation; `refuse(id)` is the answer to one that arrives while
        the worker is shutting down."""
        self.answer = answer
        self.refuse = refuse
        self.closing = False
        self.connections: set[_Connection] = set()
        self.address = ""
        self._server: asyncio.AbstractServer | None = None

    async def start(self, listen: str) -> str:
        """Listen on "HOST:PORT" (port 0: the system picks) or "unix:PATH"; returns the bound
        address as it is advertised."""
        loop = asyncio.get_running_loop()
        if listen.startswith("unix:"):
            path = listen.removeprefix("unix:")
            self._server = await loop.create_unix_server(lambda: _Connection(self), path)
            self.address = listen
        else:
            host, _, port = listen.rpartition(":")
            bare = host.removeprefix("[").removesuffix("]")
            self._server = await loop.create_server(
                lambda: _Connection(self), bare or None, int(port), reuse_port=False
            )
            bound = self._server.sockets[0].getsockname()[1]
            self.address = f"{host}:{bound}"
        return self.address

    async def stop(self, grace_s: float) -> None:
        """Stop listening, refuse new operations, give those running `grace_s`, close."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        running = [t for c in self.connections for t in c.running]
        if running:
            await asyncio.wait(running, timeout=grace_s)
        for c in list(self.connections):
            c.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
