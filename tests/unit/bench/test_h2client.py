"""The harness's HTTP/2 client against a hand-written transport: frames in, frames out."""

from __future__ import annotations

import asyncio
import struct

import hpack
import pytest

from bench import h2client as h2
from bench.h2client import Connection, Reply

HEADERS_200 = [(":status", "200"), ("content-type", "application/grpc")]


class FakeTransport:
    """Keeps what the client writes; the test plays the server."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def frames(self) -> list[tuple[int, int, int, bytes]]:
        """Every frame written since the last call (the connection preface skipped)."""
        data = bytes(self.written)
        self.written.clear()
        if data.startswith(h2.PREFACE):
            data = data[len(h2.PREFACE) :]
        out, at = [], 0
        while at < len(data):
            length = int.from_bytes(data[at : at + 3], "big")
            kind, flags = data[at + 3], data[at + 4]
            stream_id = int.from_bytes(data[at + 5 : at + 9], "big")
            out.append((kind, flags, stream_id, data[at + 9 : at + 9 + length]))
            at += 9 + length
        return out


class Server:
    """The server's side of one connection: encodes what it sends as a real server would."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.encoder = hpack.Encoder()

    def send(self, kind: int, flags: int, stream_id: int, payload: bytes = b"") -> None:
        self.conn.data_received(h2.frame(kind, flags, stream_id, payload))

    def settings(self, **values: int) -> None:
        ids = {"initial_window": h2.INITIAL_WINDOW_SIZE, "max_streams": h2.MAX_CONCURRENT_STREAMS}
        payload = b"".join(struct.pack(">HI", ids[k], v) for k, v in values.items())
        self.send(h2.SETTINGS, 0, 0, payload)

    def block(self, fields: list[tuple[str, str]]) -> bytes:
        return self.encoder.encode(fields)

    def end(self, stream_id: int, status: str = "0") -> None:
        """The trailers that end a stream."""
        fields = [("grpc-status", status)]
        self.send(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, stream_id, self.block(fields))

    def answer(self, stream_id: int, message: bytes, status: str = "0", **trailers: str) -> None:
        self.send(h2.HEADERS, h2.END_HEADERS, stream_id, self.block(HEADERS_200))
        body = b"\x00" + len(message).to_bytes(4, "big") + message
        self.send(h2.DATA, 0, stream_id, body)
        fields = [("grpc-status", status), *((k.replace("_", "-"), v) for k, v in trailers.items())]
        self.send(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, stream_id, self.block(fields))


@pytest.fixture
async def pair() -> tuple[Connection, FakeTransport, Server]:
    conn = Connection(timeout_s=5.0)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    server = Server(conn)
    server.settings()
    await conn.ready
    transport.frames()
    return conn, transport, server


HEADERS = h2.request_headers(
    authority="127.0.0.1:5",
    path="/pkg.Svc/Authorize",
    tls=False,
    timeout_s=5.0,
    metadata=(("authorization", "Bearer k"),),
)


async def sent(transport: FakeTransport) -> list[tuple[int, int, int, bytes]]:
    await asyncio.sleep(0)  # frames of a loop turn go out together, on the next turn
    return transport.frames()


async def one_call(
    pair: tuple[Connection, FakeTransport, Server],
) -> tuple[asyncio.Future[Reply], Connection, Server]:
    """A call started and its frames sent: the reply to come, the connection, the server."""
    conn, transport, server = pair
    reply = conn.call(HEADERS, b"x")
    await sent(transport)
    return reply, conn, server


def test_request_headers_decode_to_a_grpc_request() -> None:
    fields = dict(hpack.Decoder().decode(HEADERS))
    assert fields == {
        ":method": "POST",
        ":scheme": "http",
        ":path": "/pkg.Svc/Authorize",
        ":authority": "127.0.0.1:5",
        "content-type": "application/grpc",
        "te": "trailers",
        "grpc-timeout": "5000000u",
        "authorization": "Bearer k",
    }


def test_long_header_values_use_multi_byte_lengths() -> None:
    value = b"v" * 300
    assert hpack.Decoder().decode(h2.literal_field(b"x-long", value), raw=True) == [
        (b"x-long", value)
    ]


def test_grpc_timeout_keeps_at_most_eight_digits() -> None:
    assert h2.grpc_timeout(0.25) == b"250000u"
    assert h2.grpc_timeout(5000) == b"5000000m"
    assert h2.grpc_timeout(10**9) == b"99999999S"


async def test_preface_settings_and_window_are_sent_first() -> None:
    conn = Connection(timeout_s=1.0)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    assert bytes(transport.written).startswith(h2.PREFACE)
    kinds = [f[0] for f in transport.frames()]
    assert kinds == [h2.SETTINGS, h2.WINDOW_UPDATE]
    Server(conn).settings()
    assert transport.frames() == [(h2.SETTINGS, h2.ACK, 0, b"")]
    assert conn.ready.done()


async def test_a_call_is_one_headers_and_one_data_frame(
    pair: tuple[Connection, FakeTransport, Server],
) -> None:
    conn, transport, server = pair
    reply = conn.call(HEADERS, b"request")
    frames = await sent(transport)
    assert frames == [
        (h2.HEADERS, h2.END_HEADERS, 1, HEADERS),
        (h2.DATA, h2.END_STREAM, 1, b"\x00\x00\x00\x00\x07request"),
    ]
    server.answer(1, b"response", x_switch_overhead_us="137")
    result = await reply
    assert (result.code, result.message) == ("OK", b"response")
    assert result.trailers[b"x-switch-overhead-us"] == b"137"


async def test_answers_in_any_order_reach_their_calls(
    pair: tuple[Connection, FakeTransport, Server],
) -> None:
    conn, transport, server = pair
    first, second = conn.call(HEADERS, b"a"), conn.call(HEADERS, b"b")
    await sent(transport)
    server.answer(3, b"to-b")
    server.answer(1, b"to-a")
    assert (await first).message == b"to-a"
    assert (await second).message == b"to-b"


async def test_frames_split_across_reads_are_put_back_together(
    pair: tuple[Connection, FakeTransport, Server],
) -> None:
    reply, conn, server = await one_call(pair)
    whole = (
        h2.frame(h2.HEADERS, h2.END_HEADERS, 1, server.block(HEADERS_200))
        + h2.frame(h2.DATA, 0, 1, b"\x00\x00\x00\x00\x02ok")
        + h2.frame(
            h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, server.block([("grpc-status", "0")])
        )
    )
    for i in range(len(whole)):
        conn.data_received(whole[i : i + 1])
    assert (await reply).message == b"ok"


async def test_error_status_and_message_from_a_trailers_only_answer(
    pair: tuple[Connection, FakeTransport, Server],
) -> None:
    reply, _, server = await one_call(pair)
    block = server.block([*HEADERS_200, ("grpc-status", "3"), ("grpc-message", "bad%20amount")])
    server.send(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, block)
    result = await reply
    assert (result.code, result.detail, result.message) == ("INVALID_ARGUMENT", "bad amount", None)


async def test_padding_priority_and_continuation_are_read(
    pair: tuple[Connection, FakeTransport, Server],
) -> None:
    reply, _, server = await one_call(pair)
    head = server.block(HEADERS_200)
    # HEADERS padded and with a priority block, its header block split over a CONTINUATION.
    payload = bytes((3,)) + b"\x00\x00\x00\x00\x10" + head[:2] + b"\x00" * 3
    server.send(h2.HEADERS, h2.PADDED | h2.PRIORITY_FLAG, 1, payload)
    server.send(h2.CONTINUATION, h2.END_HEADERS, 1, head[2:])
    server.send(h2.DATA, h2.PADDED, 1, bytes((2,)) + b"\x00\x00\x00\x00\x02ok" + b"\x00\x00")
    server.end(1)
    assert (await reply).message == b"ok"


async def test_ping_is_answered_with_its_payload(
    pair: tuple[Connection, FakeTransport, Server],
) -> None:
    _, transport, server = pair
    server.send(h2.PING, 0, 0, b"12345678")
    assert transport.frames() == [(h2.PING, h2.ACK, 0, b"12345678")]


async def test_a_call_waits_for_the_send_window_then_goes(
    pair: tuple[Connection, FakeTransport, Server],
) -> None:
    conn, transport, server = pair
    big = b"z" * 40_000
    first, second = conn.call(HEADERS, big), conn.call(HEADERS, big)
    frames = await sent(transport)
    assert {f[2] for f in frames} == {1}  # 65,535 bytes allowed: only the first fits
    server.send(h2.WINDOW_UPDATE, 0, 0, (40_005).to_bytes(4, "big"))
    frames = await sent(transport)
    assert {f[2] for f in frames} == {3}
    assert sum(len(f[3]) for f in frames if f[0] == h2.DATA) == 40_005
    assert all(len(f[3]) <= 16_384 for f in frames)  # split at the largest frame allowed
    server.answer(1, b"1")
    server.answer(3, b"3")
    assert [(await first).message, (await second).message] == [b"1", b"3"]


async def test_max_concurrent_streams_holds_calls_back(
    pair: tuple[Connection, FakeTransport, Server],
) -> None:
    conn, transport, server = pair
    server.settings(max_streams=1)
    transport.frames()
    first, second = conn.call(HEADERS, b"a"), conn.call(HEADERS, b"b")
    assert {f[2] for f in await sent(transport)} == {1}
    server.answer(1, b"A")
    assert (await first).message == b"A"
    assert {f[2] for f in await sent(transport)} == {3}
    server.answer(3, b"B")
    assert (await second).message == b"B"


async def test_deadline_ends_the_call_and_cancels_the_stream() -> None:
    conn = Connection(timeout_s=0.05)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    server = Server(conn)
    server.settings()
    reply = conn.call(HEADERS, b"x")
    result = await reply
    assert result.code == "DEADLINE_EXCEEDED"
    await asyncio.sleep(0)
    assert (h2.RST_STREAM, 0, 1, h2.CANCEL.to_bytes(4, "big")) in transport.frames()
    # A late answer is still decoded (the header table stays in step) and then dropped.
    server.answer(1, b"late")
    second = conn.call(HEADERS, b"y")
    await asyncio.sleep(0)
    server.send(h2.HEADERS, h2.END_HEADERS, 3, server.block(HEADERS_200))
    server.send(h2.DATA, 0, 3, b"\x00\x00\x00\x00\x01y")
    server.end(3)
    assert (await second).message == b"y"


async def test_goaway_fails_only_the_streams_it_never_took(
    pair: tuple[Connection, FakeTransport, Server],
) -> None:
    conn, transport, server = pair
    taken, dropped = conn.call(HEADERS, b"a"), conn.call(HEADERS, b"b")
    await sent(transport)
    server.send(h2.GOAWAY, 0, 0, struct.pack(">II", 1, 0))
    assert (await dropped).code == "UNAVAILABLE"
    assert not taken.done()
    server.answer(1, b"finished")
    assert (await taken).message == b"finished"
    assert (await conn.call(HEADERS, b"c")).code == "UNAVAILABLE"


async def test_reset_stream_maps_to_grpc_status(
    pair: tuple[Connection, FakeTransport, Server],
) -> None:
    conn, transport, server = pair
    calls = [conn.call(HEADERS, b"x") for _ in range(3)]
    await sent(transport)
    for stream_id, code in ((1, 7), (3, 8), (5, 2)):
        server.send(h2.RST_STREAM, 0, stream_id, code.to_bytes(4, "big"))
    assert [(await c).code for c in calls] == ["UNAVAILABLE", "CANCELLED", "INTERNAL"]


async def test_lost_connection_fails_every_call_as_unavailable(
    pair: tuple[Connection, FakeTransport, Server],
) -> None:
    conn, _, server = pair
    server.settings(max_streams=1)
    running, waiting = conn.call(HEADERS, b"a"), conn.call(HEADERS, b"b")
    conn.connection_lost(ConnectionResetError("reset by peer"))
    assert [(await running).code, (await waiting).code] == ["UNAVAILABLE", "UNAVAILABLE"]
    assert "reset by peer" in (await running).detail


async def test_http_error_without_grpc_status_is_mapped(
    pair: tuple[Connection, FakeTransport, Server],
) -> None:
    reply, _, server = await one_call(pair)
    server.send(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, server.block([(":status", "503")]))
    result = await reply
    assert result.code == "UNAVAILABLE"
    assert "503" in result.detail


async def test_ok_with_a_truncated_message_is_internal(
    pair: tuple[Connection, FakeTransport, Server],
) -> None:
    reply, _, server = await one_call(pair)
    server.send(h2.HEADERS, h2.END_HEADERS, 1, server.block(HEADERS_200))
    server.send(h2.DATA, 0, 1, b"\x00\x00\x00\x00\x09short")
    server.end(1)
    assert (await reply).code == "INTERNAL"


async def test_a_broken_header_block_closes_the_connection(
    pair: tuple[Connection, FakeTransport, Server],
) -> None:
    conn, transport, _ = pair
    reply, _, server = await one_call(pair)
    server.send(h2.HEADERS, h2.END_HEADERS, 1, b"\xff\xff\xff\xff\xff")  # index far past any table
    assert transport.closed
    assert any(f[0] == h2.GOAWAY for f in transport.frames())
    conn.connection_lost(None)
    assert (await reply).code == "UNAVAILABLE"


def indexed_literal(name: bytes, value: bytes) -> bytes:
    """A literal field with incremental indexing (RFC 7541 6.2.1): it enters the table."""
    return b"\x40" + h2._hpack_int(len(name), 7) + name + h2._hpack_int(len(value), 7) + value


async def test_a_repeated_header_block_follows_the_servers_table(
    pair: tuple[Connection, FakeTransport, Server],
) -> None:
    """The same bytes mean what the table says now: the client remembers decoded blocks, and
    must forget them when a block changes the table."""
    conn, transport, server = pair
    replies = [conn.call(HEADERS, b"x") for _ in range(6)]
    await sent(transport)
    ends = h2.END_HEADERS | h2.END_STREAM
    server.send(h2.HEADERS, ends, 1, indexed_literal(b"grpc-status", b"5"))  # table: 62 = 5
    server.send(h2.HEADERS, ends, 3, b"\xbe")  # index 62
    server.send(h2.HEADERS, ends, 5, b"\xbe")  # the same block again
    server.send(h2.HEADERS, ends, 7, indexed_literal(b"grpc-status", b"7"))  # 62 = 7, 63 = 5
    server.send(h2.HEADERS, ends, 9, b"\xbe")
    server.send(h2.HEADERS, ends, 11, b"\xbf")
    codes = [(await r).code for r in replies]
    assert codes == [
        "NOT_FOUND",
        "NOT_FOUND",
        "NOT_FOUND",
        "PERMISSION_DENIED",
        "PERMISSION_DENIED",
        "NOT_FOUND",
    ]
    assert not transport.closed


async def test_a_table_size_update_forgets_remembered_blocks(
    pair: tuple[Connection, FakeTransport, Server],
) -> None:
    conn, transport, server = pair
    replies = [conn.call(HEADERS, b"x") for _ in range(4)]
    await sent(transport)
    ends = h2.END_HEADERS | h2.END_STREAM
    server.send(h2.HEADERS, ends, 1, indexed_literal(b"grpc-status", b"5"))
    server.send(h2.HEADERS, ends, 3, b"\xbe")
    server.send(h2.HEADERS, ends, 5, b"\x20\x88")  # table emptied; :status 200 (static)
    assert [(await r).code for r in replies[:3]] == ["NOT_FOUND", "NOT_FOUND", "UNKNOWN"]
    server.send(h2.HEADERS, ends, 7, b"\xbe")  # index 62 no longer exists
    assert transport.closed  # a protocol error, not a stale answer
    conn.connection_lost(None)
    assert (await replies[3]).code == "UNAVAILABLE"


async def test_a_size_update_that_evicts_nothing_still_counts(
    pair: tuple[Connection, FakeTransport, Server],
) -> None:
    """A block whose size update evicts nothing changes the table's limit: a remembered block
    that skipped its size update would leave the client's limit behind the server's."""
    conn, transport, server = pair
    replies = [conn.call(HEADERS, b"x") for _ in range(6)]
    await sent(transport)
    ends = h2.END_HEADERS | h2.END_STREAM
    to_4096 = h2._hpack_int(4096, 5, 0x20) + b"\x88"  # size update, then :status 200
    to_50 = h2._hpack_int(50, 5, 0x20) + b"\x88"
    server.send(h2.HEADERS, ends, 1, indexed_literal(b"grpc-status", b"5"))  # 44 bytes
    server.send(h2.HEADERS, ends, 3, to_4096)  # the limit it already has
    server.send(h2.HEADERS, ends, 5, to_50)  # the entry still fits: nothing evicted
    server.send(h2.HEADERS, ends, 7, to_4096)  # back up, as the server's table is
    server.send(h2.HEADERS, ends, 9, indexed_literal(b"grpc-status", b"7"))  # 62 = 7, 63 = 5
    server.send(h2.HEADERS, ends, 11, b"\xbf")  # index 63
    codes = [(await r).code for r in replies]
    assert codes == ["NOT_FOUND", "UNKNOWN", "UNKNOWN", "UNKNOWN", "PERMISSION_DENIED", "NOT_FOUND"]
    assert not transport.closed


async def test_nothing_after_a_protocol_error_is_read(
    pair: tuple[Connection, FakeTransport, Server],
) -> None:
    conn, transport, server = pair
    first, second = conn.call(HEADERS, b"a"), conn.call(HEADERS, b"b")
    await sent(transport)
    ends = h2.END_HEADERS | h2.END_STREAM
    conn.data_received(
        h2.frame(h2.HEADERS, ends, 1, b"\xff\xff\xff\xff\xff")  # undecodable
        + h2.frame(h2.HEADERS, ends, 3, server.block([("grpc-status", "5")]))
    )
    assert transport.closed
    conn.connection_lost(None)
    assert [(await first).code, (await second).code] == ["UNAVAILABLE", "UNAVAILABLE"]


def test_reply_defaults() -> None:
    reply = Reply("OK", b"m")
    assert (reply.trailers, reply.detail) == ({}, "")
