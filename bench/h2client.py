"""A lean gRPC client for unary calls: HTTP/2 framing by hand on an asyncio protocol.

grpc.aio's client costs about 180 us of CPU per unary call on this machine (a call object, its
metadata, the completion-queue thread and its hop into the event loop). On 2 cores the
generator shares the machine with the server it measures, so that cost alone kept the harness
at 56% of h2load against the same echo server. A unary call with a pre-serialized body needs
little of HTTP/2: one HEADERS and one DATA frame out, HEADERS, DATA and trailers back. This
client does that and the rest of what RFC 9113 asks of an endpoint that stays connected:
SETTINGS and PING acknowledged, flow control both ways, GOAWAY and RST_STREAM honoured,
padding and CONTINUATION read. Header blocks are decoded with `hpack` (python-hyper); requests
go out as literal fields without indexing, so there is no encoder state to keep in step.

Answers follow gRPC's HTTP/2 mapping (grpc/doc/PROTOCOL-HTTP2.md): `grpc-status` from the
trailers (or a trailers-only HEADERS), the HTTP status when there is none, RST_STREAM codes to
their gRPC status, a lost connection as UNAVAILABLE. Each call has the deadline it is given,
sent as `grpc-timeout` and kept here: on expiry the call ends as DEADLINE_EXCEEDED and the
stream is cancelled.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
import urllib.parse
from collections import deque
from collections.abc import Callable, Sequence
from typing import cast

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 section 6) and the flags this client reads or sets.
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20

# SETTINGS identifiers.
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE = 1, 2, 3, 4
MAX_FRAME_SIZE = 5

MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65_535
# The connection's receive window is topped up once this much of it has been used.
REFILL_AT = 2**30
CANCEL = 0x8
# Decoded header blocks kept per connection, at most (see Connection._decode).
MAX_REMEMBERED_BLOCKS = 256

# RST_STREAM error codes to gRPC status names (PROTOCOL-HTTP2.md, "Errors").
_RST_CODES = {7: "UNAVAILABLE", 8: "CANCELLED", 11: "RESOURCE_EXHAUSTED", 12: "PERMISSION_DENIED"}
# HTTP statuses to gRPC status names when a response has no grpc-status
# (grpc/doc/http-grpc-status-mapping.md).
_HTTP_CODES = {
    400: "INTERNAL",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "UNIMPLEMENTED",
    429: "UNAVAILABLE",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "UNAVAILABLE",
}
# gRPC status names by number; a name, not the grpc package, so this module needs no grpcio.
_GRPC_CODES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)

_HEADER = struct.Struct(">I")  # the length's 3 bytes are read with the type as one word


class Reply:
    """How one call ended: a gRPC status name, the response message and the trailers."""

    __slots__ = ("code", "detail", "message", "trailers")

    def __init__(
        self,
        code: str,
        message: bytes | None = None,
        trailers: dict[bytes, bytes] | None = None,
        detail: str = "",
    ) -> None:
        self.code = code
        self.message = message
        self.trailers = trailers or {}
        self.detail = detail


class _Call:
    __slots__ = ("data", "future", "headers", "stream_id", "timer")

    def __init__(self, future: asyncio.Future[Reply]) -> None:
        self.future = future
        self.headers: dict[bytes, bytes] | None = None
        self.data = bytearray()
        self.timer: asyncio.TimerHandle | None = None
        self.stream_id = 0  # 0 until it has a stream


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame: 3-byte length, type, flags, 4-byte stream id, payload."""
    return (
        len(payload).to_bytes(3, "big")
        + bytes((kind, flags))
        + stream_id.to_bytes(4, "big")
        + payload
    )


def _hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """An HPACK integer with an N-bit prefix (RFC 7541 section 5.1)."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal_field(name: bytes, value: bytes) -> bytes:
    """A header as a literal field without indexing and with a literal name (RFC 7541
    section 6.2.2): it never touches the server's dynamic table."""
    return b"\x00" + _hpack_int(len(name), 7) + name + _hpack_int(len(value), 7) + value


def grpc_timeout(seconds: float) -> bytes:
    """A deadline as gRPC's `grpc-timeout` value: at most 8 digits and a unit."""
    micros = max(1, int(seconds * 1_000_000))
    if micros < 100_000_000:
        return b"%du" % micros
    millis = -(-micros // 1000)
    if millis < 100_000_000:
        return b"%dm" % millis
    return b"%dS" % min(99_999_999, -(-millis // 1000))


def request_headers(
    *,
    authority: str,
    path: str,
    tls: bool,
    timeout_s: float,
    metadata: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The header block of a unary gRPC request, encoded once and sent with every call."""
    fields = [
        (b":method", b"POST"),
        (b":scheme", b"https" if tls else b"http"),
        (b":path", path.encode()),
        (b":authority", authority.encode()),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"grpc-timeout", grpc_timeout(timeout_s)),
    ]
    fields += [(k.lower().encode(), v.encode()) for k, v in metadata]
    return b"".join(literal_field(k, v) for k, v in fields)


class Connection(asyncio.Protocol):
    """One HTTP/2 connection carrying concurrent unary gRPC calls."""

    def __init__(self, *, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._decoder = hpack.Decoder()
        # Header blocks decoded while the dynamic table stood as it is now (see _decode).
        self._blocks: dict[bytes, dict[bytes, bytes]] = {}
        self._buffer = bytearray()
        self._streams: dict[int, _Call] = {}
        self._next_id = 1
        # What the server lets this client send (connection-wide and per new stream).
        self._send_window = DEFAULT_WINDOW
        self._stream_window = DEFAULT_WINDOW
        self._max_frame = 16_384
        self._max_streams = MAX_WINDOW
        self._received = 0  # bytes of DATA since the receive window was last topped up
        self._waiting: deque[tuple[bytes, bytes, _Call]] = deque()
        self._out: list[bytes] = []
        self._flush_due = False
        self._continuing: tuple[int, int, bytearray] | None = None
        self._closed: str | None = None  # why no new call can start, once that is so
        self._broken = False  # a protocol error: the rest of what arrives is not read
        self.ready: asyncio.Future[None] = self._loop.create_future()

    # -- the caller's side -------------------------------------------------------------------

    def call(self, headers: bytes, body: bytes) -> asyncio.Future[Reply]:
        """Start a unary call with a ready header block and a serialized request."""
        future: asyncio.Future[Reply] = self._loop.create_future()
        if self._closed is not None:
            future.set_result(Reply("UNAVAILABLE", detail=self._closed))
            return future
        message = b"\x00" + len(body).to_bytes(4, "big") + body
        if len(message) > self._stream_window:
            future.set_result(
                Reply("RESOURCE_EXHAUSTED", detail="request larger than the stream window")
            )
            return future
        call = _Call(future)
        call.timer = self._loop.call_later(self._timeout_s, self._expire, call)
        if self._waiting or not self._can_start(len(message)):
            self._waiting.append((headers, message, call))  # until the server lets it go
        else:
            self._start(headers, message, call)
        return future

    def _can_start(self, size: int) -> bool:
        return size <= self._send_window and len(self._streams) < self._max_streams

    def _start(self, headers: bytes, message: bytes, call: _Call) -> None:
        stream_id = self._next_id
        if stream_id > MAX_WINDOW:
            self._closed = "stream ids used up on this connection"
            self._settle(call, Reply("UNAVAILABLE", detail=self._closed))
            return
        self._next_id += 2
        self._send_window -= len(message)
        call.stream_id = stream_id
        self._streams[stream_id] = call
        out = self._out
        out.append(frame(HEADERS, END_HEADERS, stream_id, headers))
        size, end = self._max_frame, len(message)
        for at in range(0, end, size):
            last = at + size >= end
            out.append(frame(DATA, END_STREAM if last else 0, stream_id, message[at : at + size]))
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        # Every frame of this loop turn goes out in one write.
        if not self._flush_due:
            self._flush_due = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        if self._out and self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"".join(self._out))
        self._out.clear()

    def _start_waiting(self) -> None:
        if self._closed is not None:
            while self._waiting:
                self._settle(self._waiting.popleft()[2], Reply("UNAVAILABLE", detail=self._closed))
            return
        while self._waiting and self._can_start(len(self._waiting[0][1])):
            headers, message, call = self._waiting.popleft()
            if not call.future.done():
                self._start(headers, message, call)

    def _expire(self, call: _Call) -> None:
        call.timer = None
        self._settle(call, Reply("DEADLINE_EXCEEDED", detail="deadline exceeded"))
        if call.stream_id and self._streams.pop(call.stream_id, None) is not None:
            self._out.append(frame(RST_STREAM, 0, call.stream_id, CANCEL.to_bytes(4, "big")))
            self._schedule_flush()
            self._start_waiting()

    @staticmethod
    def _settle(call: _Call, reply: Reply) -> None:
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None
        if not call.future.done():
            call.future.set_result(reply)

    @property
    def closed(self) -> bool:
        """No new call can start on it (closed, lost, or the server sent GOAWAY)."""
        return self._closed is not None

    def close(self) -> None:
        if self._closed is None:
            self._closed = "connection closed by the client"
        if self._transport is not None:
            self._flush()
            self._transport.close()

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, only alike.
        self._transport = cast(asyncio.Transport, transport)
        settings = struct.pack(">HIHI", ENABLE_PUSH, 0, INITIAL_WINDOW_SIZE, MAX_WINDOW)
        self._transport.write(
            PREFACE
            + frame(SETTINGS, 0, 0, settings)
            + frame(WINDOW_UPDATE, 0, 0, (MAX_WINDOW - DEFAULT_WINDOW).to_bytes(4, "big"))
        )

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"connection lost: {exc}" if exc else "connection closed"
        if self._closed is None:
            self._closed = reason
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
        self._fail_streams(lambda sid: True, "UNAVAILABLE", reason)
        self._start_waiting()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        at, end = 0, len(buffer)
        while end - at >= 9 and not self._broken:
            word = _HEADER.unpack_from(buffer, at)[0]
            length, kind = word >> 8, word & 0xFF
            if end - at - 9 < length:
                break
            flags = buffer[at + 4]
            stream_id = _HEADER.unpack_from(buffer, at + 5)[0] & MAX_WINDOW
            payload = bytes(buffer[at + 9 : at + 9 + length])
            at += 9 + length
            self._on_frame(kind, flags, stream_id, payload)
        del buffer[:at]

    # -- frames from the server --------------------------------------------------------------

    def _on_frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self._continuing is not None and kind != CONTINUATION:
            self._protocol_error("a header block was interrupted")
            return
        if kind == DATA:
            self._on_data(flags, stream_id, payload)
        elif kind == HEADERS:
            payload = _unpad(flags, payload)
            if flags & PRIORITY_FLAG:
                payload = payload[5:]
            if flags & END_HEADERS:
                self._on_headers(stream_id, flags, payload)
            else:
                self._continuing = (stream_id, flags, bytearray(payload))
        elif kind == CONTINUATION:
            if self._continuing is None or self._continuing[0] != stream_id:
                self._protocol_error("CONTINUATION without its HEADERS")
                return
            self._continuing[2].extend(payload)
            if flags & END_HEADERS:
                sid, first_flags, block = self._continuing
                self._continuing = None
                self._on_headers(sid, first_flags, bytes(block))
        elif kind == SETTINGS:
            if not flags & ACK:
                self._on_settings(payload)
        elif kind == PING:
            if not flags & ACK:
                self._write_now(frame(PING, ACK, 0, payload))
        elif kind == WINDOW_UPDATE:
            if stream_id == 0:
                self._send_window += int.from_bytes(payload, "big") & MAX_WINDOW
                self._start_waiting()
        elif kind == RST_STREAM:
            code = int.from_bytes(payload, "big")
            name = _RST_CODES.get(code, "INTERNAL")
            self._end(stream_id, Reply(name, detail=f"stream reset by the server (code {code})"))
        elif kind == GOAWAY:
            last = int.from_bytes(payload[:4], "big") & MAX_WINDOW
            self._closed = "the server is going away (GOAWAY)"
            # Streams after `last` were never processed: safe for the caller to retry.
            self._fail_streams(lambda sid: sid > last, "UNAVAILABLE", self._closed)
            self._start_waiting()
        elif kind == PUSH_PROMISE:
            self._protocol_error("PUSH_PROMISE after push was disabled")
        # PRIORITY and unknown types are ignored, as RFC 9113 requires.

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        self._received += len(payload)
        if self._received >= REFILL_AT:
            self._write_now(frame(WINDOW_UPDATE, 0, 0, self._received.to_bytes(4, "big")))
            self._received = 0
        call = self._streams.get(stream_id)
        if call is None:
            return
        call.data += _unpad(flags, payload)
        if flags & END_STREAM:
            self._end(stream_id, Reply("INTERNAL", detail="the response ended without trailers"))

    def _on_headers(self, stream_id: int, flags: int, block: bytes) -> None:
        # Every block is decoded, even one for a stream given up on: the decoder's table must
        # follow the server's.
        fields = self._blocks.get(block)
        if fields is None:
            try:
                fields = self._decode(block)
            except hpack.HPACKError as exc:
                self._protocol_error(f"header block could not be decoded: {exc}")
                return
        call = self._streams.get(stream_id)
        if call is None:
            return
        if call.headers is None and not flags & END_STREAM:
            call.headers = fields
            return
        # Trailers, or a trailers-only response.
        head = call.headers if call.headers is not None else fields
        self._end(stream_id, _reply(head, fields, call.data))

    def _decode(self, block: bytes) -> dict[bytes, bytes]:
        """Decode a header block; remember it when decoding it left the dynamic table alone.

        A server answers every call with the same response headers (all indexed once its table
        is warm) and often the same trailers; decoding them in Python was a tenth of the
        generator's CPU per call. A block that changed nothing in the table decodes the same
        way for as long as the table stays as it is, so the remembered blocks are dropped the
        moment any block changes it (an insertion, an eviction, a size update).
        """
        table = self._decoder.header_table
        entries = table.dynamic_entries
        # What a block can change: the size limit (a size update), the length (evictions), the
        # newest entry (an insertion makes a new tuple, even of a header seen before; held
        # here, so that its identity cannot pass to a new one).
        limit, length, newest = table.maxsize, len(entries), entries[0] if entries else None
        try:
            fields = dict(self._decoder.decode(block, raw=True))
        except hpack.HPACKError:
            self._blocks.clear()  # the table may have changed before the error
            raise
        if (
            table.maxsize != limit
            or len(entries) != length
            or (entries[0] if entries else None) is not newest
        ):
            self._blocks.clear()
        else:
            if len(self._blocks) >= MAX_REMEMBERED_BLOCKS:
                self._blocks.clear()  # trailers with a value per call (a timing) churn here
            self._blocks[block] = fields
        return fields

    def _on_settings(self, payload: bytes) -> None:
        for at in range(0, len(payload) - 5, 6):
            key, value = struct.unpack_from(">HI", payload, at)
            if key == INITIAL_WINDOW_SIZE:
                self._stream_window = value
            elif key == MAX_FRAME_SIZE:
                self._max_frame = value
            elif key == MAX_CONCURRENT_STREAMS:
                self._max_streams = value
            elif key == HEADER_TABLE_SIZE:
                pass  # requests never use the server's table
        self._write_now(frame(SETTINGS, ACK, 0))
        if not self.ready.done():
            self.ready.set_result(None)
        self._start_waiting()

    def _end(self, stream_id: int, reply: Reply) -> None:
        call = self._streams.pop(stream_id, None)
        if call is None:
            return
        self._settle(call, reply)
        if self._waiting:
            self._start_waiting()

    def _fail_streams(self, which: Callable[[int], bool], code: str, detail: str) -> None:
        for stream_id in [sid for sid in self._streams if which(sid)]:
            self._end(stream_id, Reply(code, detail=detail))

    def _write_now(self, data: bytes) -> None:
        self._out.append(data)
        self._flush()

    def _protocol_error(self, why: str) -> None:
        self._broken = True  # nothing more is read from this connection
        self._closed = f"protocol error: {why}"
        self._write_now(frame(GOAWAY, 0, 0, struct.pack(">II", self._next_id - 2, 1)))
        if self._transport is not None:
            self._transport.close()


def _unpad(flags: int, payload: bytes) -> bytes:
    if flags & PADDED and payload:
        return payload[1 : len(payload) - payload[0]]
    return payload


def _reply(head: dict[bytes, bytes], trailers: dict[bytes, bytes], data: bytearray) -> Reply:
    status = trailers.get(b"grpc-status")
    if status is None:
        http = head.get(b":status", b"")
        code = _HTTP_CODES.get(int(http), "UNKNOWN") if http.isdigit() else "UNKNOWN"
        detail = f"HTTP {http.decode() or '?'} without grpc-status"
        return Reply(code, trailers=trailers, detail=detail)
    number = int(status) if status.isdigit() else 2
    code = _GRPC_CODES[number] if number < len(_GRPC_CODES) else "UNKNOWN"
    detail = urllib.parse.unquote(trailers.get(b"grpc-message", b"").decode("utf-8", "replace"))
    if code != "OK":
        return Reply(code, trailers=trailers, detail=detail)
    if len(data) < 5:
        return Reply("INTERNAL", trailers=trailers, detail="OK without a response message")
    if data[0] != 0:
        return Reply("INTERNAL", trailers=trailers, detail="compressed response not asked for")
    size = int.from_bytes(data[1:5], "big")
    if len(data) != 5 + size:
        return Reply("INTERNAL", trailers=trailers, detail="response length does not match")
    return Reply("OK", message=bytes(data[5:]), trailers=trailers)


async def connect(
    address: str,
    *,
    timeout_s: float,
    connect_timeout_s: float,
    tls: bool = False,
    ca_file: str | None = None,
) -> Connection:
    """Open a connection to HOST:PORT and wait for the server's SETTINGS."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    context = None
    if tls:
        context = ssl.create_default_context(cafile=ca_file)
        context.set_alpn_protocols(["h2"])
    loop = asyncio.get_running_loop()

    async def opened() -> Connection:
        transport, protocol = await loop.create_connection(
            lambda: Connection(timeout_s=timeout_s),
            host,
            int(port),
            ssl=context,
            server_hostname=host if tls else None,
        )
        if tls:
            tls_object = transport.get_extra_info("ssl_object")
            if tls_object is None or tls_object.selected_alpn_protocol() != "h2":
                transport.close()
                raise ConnectionError(f"{address} did not agree to HTTP/2 over TLS (ALPN h2)")
        await protocol.ready
        return protocol

    return await asyncio.wait_for(opened(), connect_timeout_s)
