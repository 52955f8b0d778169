"""Protobuf's wire format, for the few places that write a message around bytes already made.

A message field is its tag, its length and its bytes, so a message holding an already
serialized one (a stored answer, a request serialized once) is written by concatenation
instead of being parsed and copied into a new message object.
"""

from __future__ import annotations

# Every one-byte varint, made once: tags and most lengths are one byte. The hot encoders index
# it for a length under 0x80 and call `varint` only for longer ones (a call costs more).
ONE_BYTE = [bytes((n,)) for n in range(0x80)]


def varint(n: int) -> bytes:
    """An unsigned integer as a protobuf varint."""
    if 0 <= n < 0x80:  # a negative n falls through to the loop, which refuses it
        return ONE_BYTE[n]
    if n < 0x4000:
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (a message or bytes)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def uint_field(number: int, value: int) -> bytes:
    """An unsigned integer field (uint32, uint64, an enum); nothing for 0, as proto3 writes it."""
    return varint(number << 3) + varint(value) if value else b""
