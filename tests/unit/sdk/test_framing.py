"""The Exchange socket's wire format: preface, gRPC-style length-prefixed messages, addresses."""

from __future__ import annotations

import pytest

from adapters.sdk.framing import (
    MAX_MESSAGE,
    PREFACE,
    FrameError,
    FrameReader,
    frame,
    listen_address,
    reachable,
)


def test_a_frame_is_a_zero_byte_a_big_endian_length_and_the_message() -> None:
    assert frame(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert frame(b"") == b"\x00\x00\x00\x00\x00"


def test_messages_come_out_whole_however_the_bytes_are_split() -> None:
    stream = PREFACE + frame(b"first") + frame(b"") + frame(b"x" * 70_000)
    for size in (1, 3, 7, 4096, len(stream)):
        reader = FrameReader()
        got: list[bytes] = []
        for i in range(0, len(stream), size):
            got += reader.feed(stream[i : i + size])
        assert got == [b"first", b"", b"x" * 70_000]
        assert reader.greeted


def test_nothing_comes_out_before_the_preface_is_complete() -> None:
    reader = FrameReader()
    assert reader.feed(PREFACE[:5]) == []
    assert not reader.greeted
    assert reader.feed(PREFACE[5:] + frame(b"m")) == [b"m"]


@pytest.mark.parametrize(
    "start",
    [b"GET / HTTP/1.1\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"PAYSWITCH-EXCHANGE/9\n"],
)
def test_a_peer_that_speaks_something_else_is_refused_at_once(start: bytes) -> None:
    with pytest.raises(FrameError):
        FrameReader().feed(start)


def test_a_compressed_frame_or_an_oversized_one_is_refused() -> None:
    with pytest.raises(FrameError, match="flag"):
        FrameReader().feed(PREFACE + b"\x01\x00\x00\x00\x01x")
    too_big = (MAX_MESSAGE + 1).to_bytes(4, "big")
    with pytest.raises(FrameError, match="limit"):
        FrameReader().feed(PREFACE + b"\x00" + too_big)


def test_the_default_socket_address_follows_the_grpc_one() -> None:
    assert listen_address("127.0.0.1:50061") == "127.0.0.1:0"
    assert listen_address("[::]:50061") == "[::]:0"
    assert listen_address("unix:/run/card.sock") == "unix:/run/card.sock.exchange"


def test_a_wildcard_host_means_the_host_the_worker_was_reached_at() -> None:
    assert reachable("0.0.0.0:4000", "10.1.2.3:50061") == "10.1.2.3:4000"
    assert reachable("[::]:4000", "card.internal:50061") == "card.internal:4000"
    assert reachable("[::]:4000", "[fd00::7]:50061") == "[fd00::7]:4000"
    assert reachable("10.9.9.9:4000", "10.1.2.3:50061") == "10.9.9.9:4000"
    assert reachable("unix:/run/x.exchange", "unix:/run/x") == "unix:/run/x.exchange"
    with pytest.raises(ValueError):
        reachable("no-port", "10.1.2.3:50061")
