"""A multiplexed Exchange link to one adapter endpoint: many operations in flight, matched by id.

One long-lived connection carries every operation to an endpoint, the way an ISO 8583 switch
multiplexes one connection by trace number, so an operation costs a message instead of a call.
Two transports carry the same ExchangeRequest/ExchangeResponse messages:
- the Exchange socket a worker advertises in Describe (`adapters.sdk.framing`: the messages
  framed as gRPC frames them, on a plain TCP or Unix socket). Preferred: in a Python gRPC
  process every stream message costs completion-queue events handed between gRPC's threads and
  the event loop, while on the socket everything ready in one turn of the loop is one write;
- the Exchange RPC (a bidirectional gRPC stream), when the worker advertises no socket or the
  socket cannot be reached. Writes go through one writer task (a stream takes one write at a
  time).
Either way, operations ready together go out in one message. When the link breaks, operations
already written have an unknown outcome (PENDING); those not yet written were certainly not
sent. A worker without Exchange answers UNIMPLEMENTED, and the pool uses the unary RPCs for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
from google.protobuf.message import DecodeError

from adapters.sdk import framing
from payswitch.channel.v1 import channel_service_pb2 as ch
from payswitch.channel.v1 import channel_service_pb2_grpc as ch_grpc
from switch import wire

log = logging.getLogger("payswitch.link")


# ExchangeOperation's oneof: the tag (field number, length-delimited) of each kind of operation.
_KIND_TAGS = {
    name: wire.varint(ch.ExchangeOperation.DESCRIPTOR.fields_by_name[name].number << 3 | 2)
    for name in ("authorize", "capture", "void", "refund", "inquire")
}


def encode_operation(op_id: int, timeout_ms: int, kind: str, request: Any) -> bytes:
    """An ExchangeOperation as it sits inside an ExchangeRequest (field 1), serialized without
    building it: the same bytes as the message, but no copy of the request into it. Written
    out, as wire.uint_field(1, op_id) + wire.uint_field(2, timeout_ms) + wire.field(kind's
    field, request) inside wire.field(1, ...): this runs for every operation sent."""
    payload: bytes = request.SerializeToString()
    n = len(payload)
    body = (
        (b"\x08" + wire.varint(op_id) if op_id else b"")
        + (b"\x10" + wire.varint(timeout_ms) if timeout_ms else b"")
        + _KIND_TAGS[kind]
        + (wire.ONE_BYTE[n] if n < 0x80 else wire.varint(n))
        + payload
    )
    n = len(body)
    return b"\x0a" + (wire.ONE_BYTE[n] if n < 0x80 else wire.varint(n)) + body


# Operations time out at the end of a tick of this length (see ExchangeLink.send).
_TICK_S = 0.01


class LinkBroken(Exception):
    """The stream ended before the answer came; `written` says whether the request went out."""

    def __init__(self, message: str, *, written: bool) -> None:
        super().__init__(message)
        self.written = written


@dataclass(slots=True)
class _Op:
    # The ExchangeOperation: a message for the RPC's writer, or already serialized for the socket
    # (an ExchangeRequest is its operations' fields one after another, so a batch is a join).
    request: ch.ExchangeOperation | bytes
    answer: asyncio.Future[ch.ExchangeAnswer]
    written: bool = False


@dataclass(slots=True)
class ExchangeLink:
    """The switch's end of one endpoint's Exchange stream."""

    stub: ch_grpc.ChannelServiceStub
    address: str
    socket_address: str = ""  # the worker's Exchange socket, reachable form; "" when none
    supported: bool | None = None  # whether the Exchange RPC is served; None until tried
    transport: str = ""  # "socket" or "rpc" while open
    _call: Any = None
    _socket: _SocketConnection | None = None
    _queue: asyncio.Queue[_Op | None] = field(default_factory=asyncio.Queue)
    _inflight: dict[int, _Op] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Operation ids by the tick their time runs out in: one timer per tick, not per operation.
    _due: dict[int, list[int]] = field(default_factory=dict)
    # Kept from open(): asyncio.get_running_loop() costs a getpid() system call on 3.11.
    _loop: asyncio.AbstractEventLoop | None = None

    @property
    def ready(self) -> bool:
        return self._call is not None or self._socket is not None

    async def open(self) -> None:
        """Open the socket, or else the stream (setting `supported`). Safe when already open."""
        if self.ready:
            return
        self._loop = asyncio.get_running_loop()
        if self.socket_address and await self._open_socket():
            return
        if self.supported is False:
            return
        call = self.stub.Exchange()
        try:
            # Workers send headers as soon as the stream is open.
            await asyncio.wait_for(call.initial_metadata(), 2.0)
        except (grpc.aio.AioRpcError, TimeoutError) as exc:
            call.cancel()
            if (
                isinstance(exc, grpc.aio.AioRpcError)
                and exc.code() == grpc.StatusCode.UNIMPLEMENTED
            ):
                self.supported = False
                log.info(
                    "endpoint has no Exchange; unary calls it is", extra={"endpoint": self.address}
                )
            return
        if call.done():
            if await call.code() == grpc.StatusCode.UNIMPLEMENTED:
                self.supported = False
            return
        # A worker that does not implement Exchange may still send headers first; the reader
        # finds out and the link closes itself.
        self.supported = True
        self._call = call
        self.transport = "rpc"
        self._queue = asyncio.Queue()
        self._tasks = [
            asyncio.create_task(self._write(call), name=f"link-write-{self.address}"),
            asyncio.create_task(self._read(call), name=f"link-read-{self.address}"),
        ]

    async def _open_socket(self) -> bool:
        loop = asyncio.get_running_loop()
        conn = _SocketConnection(self)
        address = self.socket_address
        try:
            async with asyncio.timeout(2.0):
                if address.startswith("unix:"):
                    path = address.removeprefix("unix:")
                    await loop.create_unix_connection(lambda: conn, path)
                else:
                    host, port = framing.split(address)
                    await loop.create_connection(lambda: conn, host, port)
                await conn.greeted
        except (OSError, TimeoutError, ValueError, framing.FrameError) as exc:
            conn.close()
            log.info(
                "exchange socket unavailable; using the Exchange RPC",
                extra={"endpoint": self.address, "socket": address, "error": str(exc)},
            )
            return False
        self._socket = conn
        self.transport = "socket"
        return True

    def _socket_lost(self, conn: _SocketConnection, why: str) -> None:
        if self._socket is conn:
            self._socket = None
            self.transport = ""
            log.warning("exchange socket closed", extra={"endpoint": self.address, "why": why})
            self._fail_all(f"{self.address}: the exchange socket closed ({why})")

    def _deliver(self, answers: Any) -> None:
        for answer in answers:
            op = self._inflight.get(answer.id)
            if op is not None and not op.answer.done():
                op.answer.set_result(answer)

    async def close(self) -> None:
        conn, self._socket = self._socket, None
        if conn is not None:
            conn.close()
        call, self._call = self._call, None
        if call is not None:
            call.cancel()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._fail_all("the link was closed")

    async def send(self, kind: str, request: Any, timeout_s: float) -> ch.ExchangeAnswer:
        """Send one operation and wait for its answer; TimeoutError or LinkBroken otherwise."""
        if not self.ready:
            raise LinkBroken("the link is not open", written=False)
        loop = self._loop or asyncio.get_running_loop()
        op_id = next(self._ids)
        timeout_ms = max(1, int(timeout_s * 1000))
        op: _Op
        if self._socket is not None:
            encoded = encode_operation(op_id, timeout_ms, kind, request)
            op = _Op(request=encoded, answer=loop.create_future())
            self._inflight[op_id] = op
            self._socket.send(op)
        else:
            message = ch.ExchangeOperation(id=op_id, timeout_ms=timeout_ms)
            getattr(message, kind).CopyFrom(request)
            op = _Op(request=message, answer=loop.create_future())
            self._inflight[op_id] = op
            self._queue.put_nowait(op)
        # The operation times out at the end of the tick its time runs out in (at most _TICK_S
        # late): a timer per operation (1.6 us with uvloop, per payment) becomes one per tick.
        tick = int((loop.time() + timeout_s) / _TICK_S) + 1
        due = self._due.get(tick)
        if due is None:
            due = self._due[tick] = []
            loop.call_at(tick * _TICK_S, self._expire, tick)
        due.append(op_id)
        try:
            return await op.answer
        finally:
            self._inflight.pop(op_id, None)

    def _expire(self, tick: int) -> None:
        for op_id in self._due.pop(tick, ()):
            op = self._inflight.get(op_id)
            if op is not None and not op.answer.done():
                op.answer.set_exception(TimeoutError())

    async def _write(self, call: Any) -> None:
        # Everything queued while the previous write was under way goes out as one message.
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            while not self._queue.empty():
                op = self._queue.get_nowait()
                if op is None:
                    return
                batch.append(op)
            live = [op for op in batch if not op.answer.done()]  # timed out while queued: not sent
            if not live:
                continue
            try:
                operations = [cast(ch.ExchangeOperation, op.request) for op in live]
                await call.write(ch.ExchangeRequest(operations=operations))
            except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
                for op in live:
                    if not op.answer.done():
                        error = LinkBroken(f"{self.address}: write failed: {exc}", written=False)
                        op.answer.set_exception(error)
                self._broken(call)
                return
            for op in live:
                op.written = True

    async def _read(self, call: Any) -> None:
        try:
            async for batch in call:
                self._deliver(batch.answers)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                self.supported = False
            if exc.code() != grpc.StatusCode.CANCELLED:
                log.warning(
                    "exchange stream ended",
                    extra={"endpoint": self.address, "code": exc.code().name},
                )
        self._broken(call)

    def _broken(self, call: Any) -> None:
        if self._call is call:
            self._call = None
            self.transport = ""
            call.cancel()
        self._fail_all(f"{self.address}: the exchange stream ended")

    def _fail_all(self, why: str) -> None:
        for op in list(self._inflight.values()):
            if not op.answer.done():
                op.answer.set_exception(LinkBroken(why, written=op.written))
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)


class _SocketConnection(asyncio.Protocol):
    """The switch's end of one Exchange socket: everything sent in a turn of the loop is one
    message; answers are delivered to the link as they come."""

    def __init__(self, link: ExchangeLink) -> None:
        self._link = link
        self._reader = framing.FrameReader()
        self._transport: asyncio.Transport | None = None
        self._pending: list[_Op] = []
        self._flush_scheduled = False
        self._loop = asyncio.get_running_loop()
        self.greeted: asyncio.Future[None] = self._loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(framing.PREFACE)

    def data_received(self, data: bytes) -> None:
        try:
            messages = self._reader.feed(data)
            if self._reader.greeted and not self.greeted.done():
                self.greeted.set_result(None)
            for message in messages:
                self._link._deliver(ch.ExchangeResponse.FromString(message).answers)
        except (framing.FrameError, DecodeError) as exc:
            if not self.greeted.done():
                self.greeted.set_exception(framing.FrameError(str(exc)))
            log.warning("exchange socket: bad input", extra={"error": str(exc)})
            self.close()

    def send(self, op: _Op) -> None:
        self._pending.append(op)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        live = [op for op in pending if not op.answer.done()]  # timed out while queued: not sent
        if not live:
            return
        if self._transport is None or self._transport.is_closing():
            why = f"{self._link.address}: the exchange socket closed"
            for op in live:
                op.answer.set_exception(LinkBroken(why, written=False))
            return
        self._transport.write(framing.frame(b"".join(cast(bytes, op.request) for op in live)))
        for op in live:
            op.written = True

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if not self.greeted.done():
            self.greeted.set_exception(ConnectionError("the worker closed the exchange socket"))
            self.greeted.exception()
        self._link._socket_lost(self, str(exc) if exc else "closed by the worker")
