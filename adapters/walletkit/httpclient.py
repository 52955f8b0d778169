"""A small asyncio HTTP/1.1 client that keeps connections to one origin alive and reuses them.

Errors are translated where they appear, by what they mean for a payment:
connecting failed -> `UpstreamUnavailableError` (nothing was sent); no answer in time ->
`UpstreamTimeoutError`; the connection broke after sending -> `OutcomeUnknownError`; an answer
that is not HTTP -> `InvalidResponseError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from adapters.sdk.errors import (
    InvalidResponseError,
    OutcomeUnknownError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

MAX_HEADERS = 100
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
USER_AGENT = "payswitch-walletkit/1"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """One HTTP response; header names are lower-case, repeated headers joined by ", "."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class HttpProtocolError(Exception):
    """The peer did not speak HTTP/1.1 as expected."""


class _StaleConnection(Exception):
    """A kept-alive connection was closed by the peer before any byte of an answer came."""


class _Connection:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


class HttpClient:
    """Requests to one origin over a pool of kept-alive connections (at most `max_connections`)."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int = 32,
        connect_timeout: float = 2.0,
        timeout: float = 10.0,
        idle_timeout: float = 30.0,
        max_body: int = 4 << 20,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._host_header = parts.netloc
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._idle_timeout = idle_timeout
        self._max_body = max_body
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._closed = False
        self.connections_opened = 0

    @property
    def origin(self) -> str:
        return f"{self._host}:{self._port}"

    async def request(
        self,
        method: str,
        target: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> HttpResponse:
        """Send one request and read its answer; see the module docstring for the errors."""
        if self._closed:
            raise UpstreamUnavailableError("HTTP client is closed")
        head = self._head(method, target, headers or {}, body)
        async with self._slots:
            conn = self._take_idle()
            reused = conn is not None
            if conn is None:
                conn = await self._connect()
            try:
                return await self._exchange(conn, method, head, body)
            except _StaleConnection:
                if not reused:
                    raise self._no_answer() from None
            # A kept-alive connection the peer had already closed: it read nothing of ours, so
            # the request goes once more on a fresh connection.
            try:
                return await self._exchange(await self._connect(), method, head, body)
            except _StaleConnection:
                raise self._no_answer() from None

    async def aclose(self) -> None:
        """Close every idle connection; busy ones close when their request ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        for conn in idle:
            with contextlib.suppress(OSError):
                await conn.writer.wait_closed()

    def _no_answer(self) -> OutcomeUnknownError:
        return OutcomeUnknownError(f"{self.origin} closed the connection without answering")

    def _head(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> bytes:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header}"]
        names = {name.lower() for name in headers}
        if "user-agent" not in names:
            lines.append(f"User-Agent: {USER_AGENT}")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _take_idle(self) -> _Connection | None:
        now = asyncio.get_running_loop().time()
        while self._idle:
            conn = self._idle.pop()
            if conn.usable() and now - conn.idle_since < self._idle_timeout:
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Connection:
        try:
            # asyncio.timeout, not wait_for: on 3.11 a wait_for cancelled just as the
            # connection completes loses the connection without closing it.
            async with asyncio.timeout(self._connect_timeout):
                reader, writer = await asyncio.open_connection(
                    self._host, self._port, ssl=self._ssl
                )
        except (OSError, TimeoutError) as exc:
            raise UpstreamUnavailableError(f"cannot connect to {self.origin}: {exc!r}") from exc
        self.connections_opened += 1
        return _Connection(reader, writer)

    async def _exchange(
        self, conn: _Connection, method: str, head: bytes, body: bytes
    ) -> HttpResponse:
        keep = False
        try:
            conn.writer.write(head + body)
            async with asyncio.timeout(self._timeout):
                response, keep = await self._read(conn.reader, method)
            return response
        except TimeoutError as exc:
            raise UpstreamTimeoutError(f"{self.origin} did not answer in time") from exc
        except HttpProtocolError as exc:
            raise InvalidResponseError(f"{self.origin} sent a malformed answer: {exc}") from exc
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise OutcomeUnknownError(f"connection to {self.origin} broke: {exc!r}") from exc
        finally:
            if keep and not self._closed:
                conn.idle_since = asyncio.get_running_loop().time()
                self._idle.append(conn)
            else:
                conn.close()

    async def _read(self, reader: asyncio.StreamReader, method: str) -> tuple[HttpResponse, bool]:
        status_line = await reader.readline()
        if not status_line:
            raise _StaleConnection
        try:
            version, code, *_ = status_line.decode("latin-1").split(" ", 2)
            status = int(code)
        except ValueError as exc:
            raise HttpProtocolError("bad status line") from exc
        if not version.startswith("HTTP/1.") or not 100 <= status <= 599:
            raise HttpProtocolError("bad status line")
        headers = await read_headers(reader)
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if method == "HEAD" or status in (204, 304) or status < 200:
            return HttpResponse(status, headers, b""), keep
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked(reader)
        elif "content-length" in headers:
            length = parse_content_length(headers["content-length"], self._max_body)
            body = await reader.readexactly(length)
        else:
            body = await reader.read(self._max_body + 1)
            keep = False
        if len(body) > self._max_body:
            raise HttpProtocolError("body too large")
        return HttpResponse(status, headers, body), keep

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_line = await reader.readline()
            token = size_line.split(b";", 1)[0].strip()
            # Hex digits only: int(_, 16) also takes a sign, "0x" and underscores.
            if not _CHUNK_SIZE.fullmatch(token):
                raise HttpProtocolError("bad chunk size")
            size = int(token, 16)
            if size == 0:
                await read_headers(reader)
                return b"".join(parts)
            total += size
            if total > self._max_body:
                raise HttpProtocolError("body too large")
            parts.append(await reader.readexactly(size))
            if await reader.readexactly(2) != b"\r\n":
                raise HttpProtocolError("bad chunk end")


async def read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    """Header lines up to the blank line, names lower-cased; raises `HttpProtocolError` if bad."""
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS):
        line = await reader.readline()
        if not line.endswith(b"\n"):
            raise asyncio.IncompleteReadError(line, None)
        if line in (b"\r\n", b"\n"):
            return headers
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not name or name != name.strip():
            raise HttpProtocolError("bad header line")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    raise HttpProtocolError("too many headers")


def parse_content_length(value: str, limit: int) -> int:
    if not (value.isascii() and value.isdigit()):  # "\xb2" is a digit to isdigit, not to int
        raise HttpProtocolError("bad Content-Length")
    length = int(value)
    if length > limit:
        raise HttpProtocolError("body too large")
    return length
