"""How a generator sends one request: a unary call, or a message on a StreamPayments stream."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import grpc

from bench import h2client, payloads
from bench.config import RunConfig
from payswitch.gateway.v1 import gateway_service_pb2

OVERHEAD_KEY = "x-switch-overhead-us"
RESPONSE_TYPES: dict[str, Any] = {
    "Authorize": gateway_service_pb2.AuthorizeResponse,
    "Capture": gateway_service_pb2.CaptureResponse,
    "Refund": gateway_service_pb2.RefundResponse,
}
# Field numbers of each request in StreamPaymentsRequest's oneof (and of its answer).
STREAM_FIELDS: dict[str, int] = {"Authorize": 2, "Capture": 3, "Refund": 5}
_CODE_NAMES: dict[int, str] = {code.value[0]: code.name for code in grpc.StatusCode}

# (gRPC status name, the payment in the answer or None, the switch's overhead in us or None)
Outcome = tuple[str, Any, int | None]


def overhead_us(metadata: Any) -> int | None:
    """The switch's own time from the `x-switch-overhead-us` trailer, when it sent one."""
    if not metadata:
        return None
    value = metadata.get(OVERHEAD_KEY)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


_OVERHEAD_FIELD = OVERHEAD_KEY.encode()


def open_channel(cfg: RunConfig) -> grpc.aio.Channel:
    """One grpc.aio channel to the target with its own TCP connection."""
    # A local subchannel pool stops channels with equal arguments from sharing a connection.
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.enable_retries", 0)]
    target = cfg.target
    if not target.tls:
        return grpc.aio.insecure_channel(target.address, options=options)
    root = None
    if target.ca_file is not None:
        with open(target.ca_file, "rb") as f:
            root = f.read()
    creds = grpc.ssl_channel_credentials(root_certificates=root)
    return grpc.aio.secure_channel(target.address, creds, options=options)


class Sender(Protocol):
    """Sends one serialized request of an RPC and says how it ended."""

    async def send(self, rpc: str, request: bytes) -> Outcome: ...

    async def close(self) -> None: ...


class UnarySender:
    """Each request is its own unary call; bytes in, bytes out, no serializers."""

    def __init__(self, channel: grpc.aio.Channel, *, timeout: float, metadata: Any) -> None:
        self._calls = {
            rpc: channel.unary_unary(payloads.method_path(rpc)) for rpc in RESPONSE_TYPES
        }
        self._timeout = timeout
        self._metadata = metadata

    async def send(self, rpc: str, request: bytes) -> Outcome:
        call = self._calls[rpc](request, timeout=self._timeout, metadata=self._metadata)
        try:
            response = await call
        except grpc.aio.AioRpcError as exc:
            return exc.code().name, None, overhead_us(exc.trailing_metadata())
        trailing = await call.trailing_metadata()
        return "OK", RESPONSE_TYPES[rpc].FromString(response).payment, overhead_us(trailing)

    async def close(self) -> None:
        return None


# After a connection the server closed (GOAWAY, a restart) could not be opened again, calls wait
# this long before the next try, so that callers do not spin on answers that fail at once.
REOPEN_PAUSE_S = 0.1


class LeanUnarySender:
    """Unary calls over the harness's own HTTP/2 connection (bench/h2client.py): the same
    requests, deadline and metadata as UnarySender, at under half its CPU per call.

    Like a gRPC channel, it opens a new connection when the server has closed the one it had
    (GOAWAY: a restart, a maximum connection age), given `reopen`."""

    def __init__(
        self,
        connection: h2client.Connection,
        headers: dict[str, bytes],
        reopen: Callable[[], Awaitable[h2client.Connection]] | None = None,
    ) -> None:
        self._connection = connection
        self._headers = headers  # each RPC's ready header block
        self._reopen = reopen
        self._reopening: asyncio.Task[None] | None = None
        self.reopened = 0

    async def _reconnect(self) -> None:
        """One new connection for every caller that found the old one closed."""
        if self._reopening is None:
            self._reopening = asyncio.get_running_loop().create_task(self._open_again())
        reopening = self._reopening
        await asyncio.shield(reopening)

    async def _open_again(self) -> None:
        assert self._reopen is not None
        try:
            old, self._connection = self._connection, await self._reopen()
            old.close()
            self.reopened += 1
        except (OSError, TimeoutError):
            await asyncio.sleep(REOPEN_PAUSE_S)  # calls fail UNAVAILABLE, not at once
        finally:
            self._reopening = None

    @staticmethod
    def header_blocks(
        *, authority: str, tls: bool, timeout: float, metadata: Any
    ) -> dict[str, bytes]:
        return {
            rpc: h2client.request_headers(
                authority=authority,
                path=payloads.method_path(rpc),
                tls=tls,
                timeout_s=timeout,
                metadata=metadata or (),
            )
            for rpc in RESPONSE_TYPES
        }

    async def send(self, rpc: str, request: bytes) -> Outcome:
        if self._connection.closed and self._reopen is not None:
            await self._reconnect()
        reply = await self._connection.call(self._headers[rpc], request)
        value = reply.trailers.get(_OVERHEAD_FIELD)
        overhead = int(value) if value is not None and value.isdigit() else None
        if reply.message is None:
            return reply.code, None, overhead
        return "OK", RESPONSE_TYPES[rpc].FromString(reply.message).payment, overhead

    async def close(self) -> None:
        self._connection.close()


# Requests the batch transport puts into one StreamPaymentBatches message, at most.
MAX_BATCH = 256


class StreamSender:
    """Requests as messages of one StreamPayments stream, answered by id in any order; or, when
    `batched`, as StreamPaymentBatches messages each carrying every request ready to go.

    A request not answered within the deadline counts as DEADLINE_EXCEEDED; the stream carries
    on. The stream has no per-message trailer, so no switch overhead is recorded here.
    """

    def __init__(
        self, channel: grpc.aio.Channel, *, timeout: float, metadata: Any, batched: bool = False
    ) -> None:
        self._batched = batched
        rpc = "StreamPaymentBatches" if batched else "StreamPayments"
        self._open = channel.stream_stream(payloads.method_path(rpc))
        self._timeout = timeout
        self._metadata = metadata
        self._pending: dict[int, asyncio.Future[Outcome]] = {}
        self._next_id = 1
        self._call: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._writes: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._ended: str | None = None  # the status every later request gets once it ended

    def start(self) -> None:
        self._call = self._open(metadata=self._metadata)
        self._reader = asyncio.create_task(self._read())
        self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        # One writer: grpc.aio takes one write at a time on a stream.
        try:
            while (frame := await self._writes.get()) is not None:
                if self._batched:
                    frame, ended = self._batch(frame)
                    await self._call.write(frame)
                    if ended:
                        break
                else:
                    await self._call.write(frame)
            await self._call.done_writing()
        except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
            return  # the stream has ended; the reader answers what is pending

    def _batch(self, first: bytes) -> tuple[bytes, bool]:
        """`first` and every request queued behind it, as one StreamPaymentBatchesRequest; True
        when the end of the stream was reached."""
        parts = [payloads.length_delimited(1, first)]
        while len(parts) < MAX_BATCH and not self._writes.empty():
            frame = self._writes.get_nowait()
            if frame is None:
                return b"".join(parts), True
            parts.append(payloads.length_delimited(1, frame))
        return b"".join(parts), False

    def _answer(self, answer: Any) -> None:
        future = self._pending.pop(answer.id, None)
        if future is None or future.done():
            return
        kind = answer.WhichOneof("response")
        if kind == "error":
            future.set_result((_CODE_NAMES.get(answer.error.code, "UNKNOWN"), None, None))
        elif kind is None:
            future.set_result(("UNKNOWN", None, None))
        else:
            future.set_result(("OK", getattr(answer, kind).payment, None))

    async def _read(self) -> None:
        try:
            async for message in self._call:
                if self._batched:
                    batch = gateway_service_pb2.StreamPaymentBatchesResponse.FromString(message)
                    for answer in batch.responses:
                        self._answer(answer)
                else:
                    self._answer(gateway_service_pb2.StreamPaymentsResponse.FromString(message))
            failure = "UNAVAILABLE"  # the server ended the stream with requests unanswered
        except grpc.aio.AioRpcError as exc:
            failure = exc.code().name
        self._ended = failure
        for future in self._pending.values():
            if not future.done():
                future.set_result((failure, None, None))
        self._pending.clear()

    def _expire(self, request_id: int) -> None:
        future = self._pending.pop(request_id, None)
        if future is not None and not future.done():
            future.set_result(("DEADLINE_EXCEEDED", None, None))

    async def send(self, rpc: str, request: bytes) -> Outcome:
        if self._ended is not None:
            return self._ended, None, None
        request_id = self._next_id
        self._next_id += 1
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        frame = payloads.varint_field(1, request_id) + payloads.length_delimited(
            STREAM_FIELDS[rpc], request
        )
        self._writes.put_nowait(frame)
        timer = asyncio.get_running_loop().call_later(self._timeout, self._expire, request_id)
        try:
            return await future
        finally:
            timer.cancel()

    async def close(self) -> None:
        self._writes.put_nowait(None)
        for task in (self._writer, self._reader):
            if task is not None:
                try:
                    await asyncio.wait_for(task, timeout=5)
                except (TimeoutError, grpc.aio.AioRpcError):
                    task.cancel()
        if self._call is not None:
            self._call.cancel()
