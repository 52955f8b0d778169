"""TCP framing for ISO 8583: each message is preceded by a 2-byte big-endian length."""

from __future__ import annotations

import asyncio

MAX_FRAME = 0xFFFF
# A message is at least an MTI and a primary bitmap.
MIN_FRAME = 20


class FrameError(Exception):
    """The byte stream is no longer aligned on frames; the connection must be closed."""


class ConnectionClosed(Exception):
    """The peer closed the connection cleanly between two frames."""


def frame(message: bytes) -> bytes:
    """Prefix one encoded message with its length."""
    if not MIN_FRAME <= len(message) <= MAX_FRAME:
        raise FrameError(f"message of {len(message)} bytes cannot be framed")
    return len(message).to_bytes(2, "big") + message


async def read_frame(reader: asyncio.StreamReader, body_timeout: float) -> bytes:
    """Read one frame: wait as long as needed for its header, then at most `body_timeout`.

    A peer that stops in the middle of a frame (a truncated frame) or announces an impossible
    length raises FrameError; a clean close between frames raises ConnectionClosed.
    """
    try:
        header = await reader.readexactly(2)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise FrameError("connection closed inside a length header") from exc
        raise ConnectionClosed from exc
    length = int.from_bytes(header, "big")
    if length < MIN_FRAME:
        raise FrameError(f"frame length {length} is shorter than any message")
    try:
        async with asyncio.timeout(body_timeout):
            return await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise FrameError(
            f"truncated frame: {len(exc.partial)} of {length} bytes before the peer closed"
        ) from exc
    except TimeoutError as exc:
        raise FrameError(f"truncated frame: the rest of {length} bytes never came") from exc
