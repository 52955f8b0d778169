"""The wire format of the Exchange socket: Exchange without HTTP/2.

A worker built with the SDK serves Exchange twice: as the gRPC streaming RPC, and on a plain
socket that it advertises in DescribeResponse.exchange_address. The socket carries the same
ExchangeRequest and ExchangeResponse messages, each framed exactly as gRPC frames a message on
the wire (a zero "not compressed" byte, the length as 4 bytes big-endian, the message), after a
preface line each way, so that neither end mistakes some other service for its peer. Both the
worker and the switch use this module; it knows bytes, not messages.
"""

from __future__ import annotations

import struct

PREFACE = b"PAYSWITCH-EXCHANGE/1\n"
# gRPC's own default limit for a received message.
MAX_MESSAGE = 4 * 1024 * 1024

_HEADER = struct.Struct(">BI")
_WILDCARDS = {"", "0.0.0.0", "::", "[::]"}


class FrameError(Exception):
    """The peer broke the format; the connection must be closed."""


def frame(message: bytes) -> bytes:
    """One message as it goes on the socket."""
    return _HEADER.pack(0, len(message)) + message


class FrameReader:
    """Splits what a socket receives into messages, after checking the peer's preface."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._greeted = False

    @property
    def greeted(self) -> bool:
        """Whether the peer's preface has come."""
        return self._greeted

    def feed(self, data: bytes) -> list[bytes]:
        """The messages completed by `data` (none, one or many); FrameError on bad input."""
        buffer = self._buffer
        buffer += data
        if not self._greeted:
            if len(buffer) < len(PREFACE):
                if not PREFACE.startswith(bytes(buffer)):
                    raise FrameError("the peer does not speak the Exchange socket protocol")
                return []
            if not buffer.startswith(PREFACE):
                raise FrameError("the peer does not speak the Exchange socket protocol")
            del buffer[: len(PREFACE)]
            self._greeted = True
        messages: list[bytes] = []
        start = 0
        end = len(buffer)
        while end - start >= _HEADER.size:
            flag, length = _HEADER.unpack_from(buffer, start)
            if flag != 0:
                raise FrameError(f"compressed or unknown frame flag {flag}")
            if length > MAX_MESSAGE:
                raise FrameError(f"a message of {length} bytes is over the {MAX_MESSAGE} limit")
            if end - start - _HEADER.size < length:
                break
            body = start + _HEADER.size
            messages.append(bytes(buffer[body : body + length]))
            start = body + length
        if start:
            del buffer[:start]
        return messages


def listen_address(grpc_listen: str) -> str:
    """The socket address a worker listening for gRPC on `grpc_listen` uses by default: the
    same host with a port of the system's choosing, or the same Unix path plus ".exchange"."""
    if grpc_listen.startswith("unix:"):
        return grpc_listen + ".exchange"
    host, _, _ = grpc_listen.rpartition(":")
    return f"{host}:0"


def split(address: str) -> tuple[str, int]:
    """("host", port) of "HOST:PORT" or "[v6]:PORT"; ValueError otherwise."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not HOST:PORT: {address!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def reachable(advertised: str, endpoint: str) -> str:
    """Where to connect to an advertised socket: a wildcard host means the host of `endpoint`,
    the gRPC address the worker was reached at."""
    if advertised.startswith("unix:"):
        return advertised
    host, port = split(advertised)
    if host in _WILDCARDS:
        host = "127.0.0.1" if endpoint.startswith("unix:") else split(endpoint)[0]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
