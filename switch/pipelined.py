"""One pipelined Redis connection for the hot path's scripts: many commands in flight, one write
per event-loop turn, replies matched in order.

Redis answers the commands of one connection in the order it received them, so a connection
needs no pool to carry many requests at once: every command issued during one turn of the loop
goes out in a single write, and every reply in a read resolves its waiter. Per command this
costs a fraction of redis-py's pooled connections, which is where the switch's Redis time went
(measured in the commit that added this module). Everything else the switch asks of Redis still
goes through redis-py.

Framing and parsing are hiredis's (`pack_command`, `Reader`). Failures are ConnectionError
(connection refused or lost: every command in flight fails with it) and TimeoutError (no reply
in time: the connection is closed, because a reply that comes late would answer the wrong
command otherwise). The next command reconnects.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import urllib.parse
from typing import Any

import hiredis


class ReplyError(Exception):
    """Redis answered a command with an error reply."""


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: PipelinedRedis) -> None:
        self._owner = owner
        self._reader = hiredis.Reader(replyError=ReplyError)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        waiters = self._owner._waiters
        while (reply := self._reader.gets()) is not False:
            if not waiters:
                break
            waiter, _ = waiters.popleft()
            if not waiter.done():
                if isinstance(reply, ReplyError):
                    waiter.set_exception(reply)
                else:
                    waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._lost(self)


class PipelinedRedis:
    """A single Redis connection carrying many commands at once; reconnects on demand."""

    def __init__(self, url: str, *, timeout_s: float, connect_timeout_s: float) -> None:
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qs(parts.query)
        if parts.scheme == "unix":
            # redis-py's form: unix:///path/to/redis.sock?db=N (password in the URL or query)
            self._path: str | None = parts.path
            self._db = int(query.get("db", ["0"])[0])
            if not self._path:
                raise ValueError(f"a unix:// Redis URL needs a socket path: {url!r}")
        elif parts.scheme in ("redis", ""):
            self._path = None
            self._db = int(parts.path.lstrip("/") or 0)
        else:
            raise ValueError(
                f"the hot-path Redis connection supports redis:// and unix:// URLs, not {url!r}"
            )
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 6379
        password = parts.password or query.get("password", [None])[0]
        self._password = urllib.parse.unquote(password) if password else None
        self._username = urllib.parse.unquote(parts.username) if parts.username else None
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._transport: asyncio.Transport | None = None
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[None] | None = None
        # Each command's waiter and the loop time its reply is due by, in the order sent (the
        # order Redis answers in). One watchdog timer looks at the oldest, instead of a timer
        # per command.
        self._waiters: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._watchdog: asyncio.TimerHandle | None = None
        self._buffer: list[bytes] = []
        self._flush_scheduled = False
        self._scripts: dict[str, bytes] = {}
        # The loop of the connection, kept: asyncio.get_running_loop() is a getpid() system
        # call per use on Python 3.11, and the hot path used it several times per payment.
        self._loop: asyncio.AbstractEventLoop | None = None

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._transport is not None:
            self._transport.close()
        self._transport = None

    # --- scripts ---------------------------------------------------------------------------

    def register(self, source: str) -> str:
        """Remember a script's source; returns its SHA1 for `evalsha`."""
        sha = hashlib.sha1(source.encode()).hexdigest()
        self._scripts[sha] = source.encode()
        return sha

    async def evalsha(self, sha: str, keys: list[str], args: list[Any]) -> Any:
        """Run a registered script; loads it if Redis does not know it (after a restart)."""
        try:
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self.execute("EVAL", self._scripts[sha], len(keys), *keys, *args)

    # --- commands --------------------------------------------------------------------------

    async def execute(self, *command: Any) -> Any:
        loop = self._loop
        if loop is None or self._transport is None or self._transport.is_closing():
            await self._connect()
            loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        self._send(hiredis.pack_command(command), waiter, loop)
        return await waiter

    def _send(
        self, packed: bytes, waiter: asyncio.Future[Any], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._waiters.append((waiter, loop.time() + self._timeout_s))
        self._buffer.append(packed)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        if self._watchdog is None:
            self._watchdog = loop.call_later(self._timeout_s, self._watch)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._buffer:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        if self._transport is None or self._transport.is_closing():
            self._fail_all(ConnectionError("the Redis connection was lost"))
            return
        self._transport.write(data)

    def _watch(self) -> None:
        """Fail the oldest command still waiting past its time, closing the connection (its
        reply may still come, and would then be taken for the next command's); else look again
        when the oldest is due."""
        self._watchdog = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for waiter, due in self._waiters:
            if due > now:
                self._watchdog = loop.call_at(due, self._watch)
                return
            if not waiter.done():
                waiter.set_exception(
                    TimeoutError(f"Redis did not answer within {self._timeout_s}s")
                )
                if self._transport is not None:
                    self._transport.abort()
                return

    async def _connect(self) -> None:
        if self._connecting is not None:
            await asyncio.shield(self._connecting)
            return
        loop = self._loop = asyncio.get_running_loop()
        self._connecting = loop.create_future()
        self._fail_all(ConnectionError("the Redis connection was lost"))
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                if self._path is not None:
                    transport, protocol = await loop.create_unix_connection(
                        lambda: _Protocol(self), self._path
                    )
                else:
                    transport, protocol = await loop.create_connection(
                        lambda: _Protocol(self), self._host, self._port
                    )
            self._transport, self._protocol = transport, protocol
            for setup in self._setup_commands():
                waiter: asyncio.Future[Any] = loop.create_future()
                self._send(hiredis.pack_command(setup), waiter, loop)
                async with asyncio.timeout(self._timeout_s):
                    await waiter
            self._connecting.set_result(None)
        except (OSError, TimeoutError, ReplyError) as exc:
            where = self._path or f"{self._host}:{self._port}"
            error = ConnectionError(f"cannot connect to Redis at {where}: {exc}")
            self._connecting.set_exception(error)
            self._connecting.exception()  # retrieved: the awaiting callers get it below
            if self._transport is not None:
                self._transport.abort()
                self._transport = None
            raise error from exc
        finally:
            self._connecting = None

    def _setup_commands(self) -> list[tuple[Any, ...]]:
        setup: list[tuple[Any, ...]] = []
        if self._password is not None:
            auth = (
                ("AUTH", self._username, self._password)
                if self._username
                else ("AUTH", self._password)
            )
            setup.append(auth)
        if self._db:
            setup.append(("SELECT", self._db))
        return setup

    def _lost(self, protocol: _Protocol) -> None:
        if protocol is not self._protocol:
            return  # an earlier connection; its commands were failed when it was replaced
        self._transport = None
        self._protocol = None
        self._fail_all(ConnectionError("the Redis connection was lost"))

    def _fail_all(self, error: Exception) -> None:
        while self._waiters:
            waiter, _ = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)
