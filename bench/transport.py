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


class _Stream:
    """One StreamPayments (or StreamPaymentBatches) call: its writer, its reader, and the
    requests sent on it that wait for their answer."""

    def __init__(self, call: Any, *, batched: bool) -> None:
        self.call = call
        self.batched = batched
        self.pending: dict[int, asyncio.Future[Outcome]] = {}
        self.writes: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.answered = 0
        self.ended: str | None = None  # the status its unanswered requests got when it ended
        self.reader = asyncio.create_task(self._read())
        self.writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        # One writer: grpc.aio takes one write at a time on a stream.
        try:
            while (frame := await self.writes.get()) is not None:
                if self.batched:
                    frame, ended = self._batch(frame)
                    await self.call.write(frame)
                    if ended:
                        break
                else:
                    await self.call.write(frame)
            await self.call.done_writing()
        except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
            return  # the stream has ended; the reader answers what is pending

    def _batch(self, first: bytes) -> tuple[bytes, bool]:
        """`first` and every request queued behind it, as one StreamPaymentBatchesRequest; True
        when the end of the stream was reached."""
        parts = [payloads.length_delimited(1, first)]
        while len(parts) < MAX_BATCH and not self.writes.empty():
            frame = self.writes.get_nowait()
            if frame is None:
                return b"".join(parts), True
            parts.append(payloads.length_delimited(1, frame))
        return b"".join(parts), False

    def _answer(self, answer: Any) -> None:
        self.answered += 1
        future = self.pending.pop(answer.id, None)
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
            async for message in self.call:
                if self.batched:
                    batch = gateway_service_pb2.StreamPaymentBatchesResponse.FromString(message)
                    for answer in batch.responses:
                        self._answer(answer)
                else:
                    self._answer(gateway_service_pb2.StreamPaymentsResponse.FromString(message))
            failure = "UNAVAILABLE"  # the server ended the stream with requests unanswered
        except grpc.aio.AioRpcError as exc:
            failure = exc.code().name
        self.ended = failure
        for future in self.pending.values():
            if not future.done():
                future.set_result((failure, None, None))
        self.pending.clear()

    def expire(self, request_id: int) -> None:
        future = self.pending.pop(request_id, None)
        if future is not None and not future.done():
            future.set_result(("DEADLINE_EXCEEDED", None, None))

    def discard(self) -> None:
        """Let go of a stream that has ended: its writer may still wait for a request."""
        self.writer.cancel()
        self.call.cancel()

    async def close(self) -> None:
        self.writes.put_nowait(None)
        for task in (self.writer, self.reader):
            try:
                await asyncio.wait_for(task, timeout=5)
            except (TimeoutError, grpc.aio.AioRpcError):
                task.cancel()
        self.call.cancel()


class StreamSender:
    """Requests as messages of one StreamPayments stream, answered by id in any order; or, when
    `batched`, as StreamPaymentBatches messages each carrying every request ready to go.

    A request not answered within the deadline counts as DEADLINE_EXCEEDED; the stream carries
    on. The stream has no per-message trailer, so no switch overhead is recorded here.

    When the stream has ended (a restart, GOAWAY, a lost connection, a refusal), the next request
    opens a new one, as a gRPC channel opens a new connection: one opening shared by the callers
    that found it ended. A stream that ended before answering anything is taken for a failed
    opening: requests wait REOPEN_PAUSE_S before they go on the next one, so that callers do not
    spin on requests that fail at once.
    """

    def __init__(
        self, channel: grpc.aio.Channel, *, timeout: float, metadata: Any, batched: bool = False
    ) -> None:
        self._batched = batched
        rpc = "StreamPaymentBatches" if batched else "StreamPayments"
        self._open = channel.stream_stream(payloads.method_path(rpc))
        self._timeout = timeout
        self._metadata = metadata
        self._next_id = 1
        self._stream: _Stream | None = None
        self._reopening: asyncio.Task[None] | None = None
        self.reopened = 0

    def start(self) -> None:
        self._stream = _Stream(self._open(metadata=self._metadata), batched=self._batched)

    async def _reconnect(self) -> None:
        """One new stream for every caller that found the old one ended."""
        if self._reopening is None:
            self._reopening = asyncio.get_running_loop().create_task(self._open_again())
        await asyncio.shield(self._reopening)

    async def _open_again(self) -> None:
        old = self._stream
        assert old is not None
        try:
            old.discard()
            self.start()
            self.reopened += 1
            if not old.answered:
                # The new stream is opened before the pause, not after: a refusal at the door
                # (a wrong API key) arrives meanwhile, and the requests waiting then meet a
                # stream that has ended. Written while the refusal is on its way, they would
                # end it INTERNAL ("Failed execute_batch") instead of with the refusal's status.
                await asyncio.sleep(REOPEN_PAUSE_S)
        finally:
            self._reopening = None

    async def send(self, rpc: str, request: bytes) -> Outcome:
        assert self._stream is not None, "start() first"
        if self._reopening is not None or self._stream.ended is not None:
            await self._reconnect()
        stream = self._stream
        if stream.ended is not None:  # the new stream ended too before this request got on it
            return stream.ended, None, None
        request_id = self._next_id
        self._next_id += 1
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        stream.pending[request_id] = future
        frame = payloads.varint_field(1, request_id) + payloads.length_delimited(
            STREAM_FIELDS[rpc], request
        )
        stream.writes.put_nowait(frame)
        timer = asyncio.get_running_loop().call_later(self._timeout, stream.expire, request_id)
        try:
            return await future
        finally:
            timer.cancel()

    async def close(self) -> None:
        reopening = self._reopening
        if reopening is not None:
            reopening.cancel()
            await asyncio.wait([reopening])
        if self._stream is not None:
            await self._stream.close()
