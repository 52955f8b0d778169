"""A small asyncio HTTP/1.1 server with keep-alive, for simulators and notification listeners."""

from __future__ import annotations

import asyncio
import http
import logging
import signal
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from adapters.sdk.serving import StreamServer
from adapters.walletkit.httpclient import HttpProtocolError, parse_content_length, read_headers

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request as received: `target` is the raw path and query; header names lower-case."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urllib.parse.urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.target).query))


@dataclass(frozen=True, slots=True)
class Reply:
    """What a handler answers; `Content-Length` is added by the server."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[HttpRequest], Awaitable[Reply]]


class HttpServer:
    """Serves `handler` on host:port (port 0 picks a free one; read `port` after `start`)."""

    def __init__(self, handler: Handler, *, host: str, port: int, max_body: int = 1 << 20) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._max_body = max_body
        self._streams = StreamServer(self._serve)
        self.port = port
        self.connections_accepted = 0

    async def start(self) -> None:
        self.port = await self._streams.start(self._host, self._port)

    async def close(self) -> None:
        """Stops accepting and closes every connection, one being accepted included."""
        await self._streams.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_accepted += 1
        try:
            while await self._one(reader, writer):
                pass
        except (HttpProtocolError, asyncio.IncompleteReadError, ConnectionError):
            pass

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        line = await reader.readline()
        if not line:
            return False
        parts = line.decode("latin-1").strip().split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await _write(writer, Reply(400, b"bad request line"), close=True)
            return False
        method, target, version = parts
        headers = await read_headers(reader)
        if "transfer-encoding" in headers:
            await _write(writer, Reply(411, b"send Content-Length"), close=True)
            return False
        length = parse_content_length(headers.get("content-length", "0"), self._max_body)
        body = await reader.readexactly(length)
        request = HttpRequest(method=method, target=target, headers=headers, body=body)
        try:
            reply = await self._handler(request)
        except Exception:
            log.exception("handler failed for %s %s", method, request.path)
            reply = Reply(500, b'{"code":"SYSTEM_ERROR","message":"internal error"}')
        close = version != "HTTP/1.1" or headers.get("connection", "").lower() == "close"
        await _write(writer, reply, close=close)
        return not close


async def _write(writer: asyncio.StreamWriter, reply: Reply, *, close: bool) -> None:
    try:
        reason = http.HTTPStatus(reply.status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {reply.status} {reason}"]
    lines.extend(f"{name}: {value}" for name, value in reply.headers.items())
    if reply.status != 204:
        lines.append(f"Content-Length: {len(reply.body)}")
    if close:
        lines.append("Connection: close")
    body = reply.body if reply.status != 204 else b""
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` as (host, port); ValueError naming the value when it is not one."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"--listen: expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


async def serve_until_signal(
    server: HttpServer, *, banner: str, cleanup: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Start `server`, print `banner` with its port, serve until SIGTERM or SIGINT, clean up."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    print(f"{banner} listening on port {server.port}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.close()
        if cleanup is not None:
            await cleanup()
