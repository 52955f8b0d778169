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

A script registered with `batched=True` is also run for many callers at once: the calls of one
loop turn go to Redis as one EVALSHA of a wrapper that runs the script's body once per call, in
order, each call with its own KEYS and ARGV, and answers each call's reply (or error) in an
array. Redis's fixed cost per script call (looking the script up, building KEYS and ARGV,
setting up the Lua run) is then paid once per batch, not once per payment. Each call is its own
atomic unit exactly as before; the batch as a whole is also atomic, as any script is.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import urllib.parse
from typing import Any, Protocol

import hiredis
import orjson


class ReplyError(Exception):
    """Redis answered a command with an error reply."""


# Calls of a batched script per EVALSHA at most: Redis runs a script to the end before it serves
# anyone else, so a batch is kept short (a payment's claim runs ~30-40 us inside Redis).
MAX_BATCH = 32

# The wrapper around a batched script's body. ARGV[1] is a JSON array of each call's number of
# keys and of arguments, in pairs (one argument, where two per call cost hiredis a formatted
# length each), then every call's arguments in order; KEYS is every call's keys in order. A
# call that raises gives an error reply in its place only.
_BATCH_WRAPPER = """\
local function one(KEYS, ARGV)
%s
end
local counts = cjson.decode(ARGV[1])
local out = {}
local k, a = 0, 1
for i = 1, #counts / 2 do
  local nk, na = counts[2 * i - 1], counts[2 * i]
  -- A constructor around unpack sizes each table once (element by element, it grows).
  local keys, args = {unpack(KEYS, k + 1, k + nk)}, {unpack(ARGV, a + 1, a + na)}
  k, a = k + nk, a + na
  local ok, res = pcall(one, keys, args)
  if not ok then
    if type(res) == 'table' and res.err then out[i] = res
    elseif string.match(tostring(res), '^%%u+ ') then out[i] = {err = tostring(res)}
    else out[i] = {err = 'ERR ' .. tostring(res)} end
  elseif res == nil then out[i] = false
  else out[i] = res end
end
return out
"""


class _Batch:
    """The waiter of one batched EVALSHA: hands each caller its own reply."""

    __slots__ = ("_callers", "_command", "_lone", "_owner", "_settled")

    def __init__(
        self,
        owner: PipelinedRedis,
        command: list[Any],
        callers: list[asyncio.Future[Any]],
        *,
        lone: bool = False,
    ) -> None:
        self._owner = owner
        self._command = command
        self._callers = callers
        self._lone = lone  # one call sent as a plain EVALSHA: its reply is the call's own
        self._settled = False

    def done(self) -> bool:
        return self._settled

    def set_result(self, replies: Any) -> None:
        self._settled = True
        if self._lone:
            replies = [replies]
        elif not isinstance(replies, list) or len(replies) != len(self._callers):
            wrong = ReplyError(f"a batch of {len(self._callers)} calls got the reply {replies!r}")
            replies = [wrong] * len(self._callers)
        for caller, reply in zip(self._callers, replies, strict=True):
            if not caller.done():
                if isinstance(reply, ReplyError):
                    caller.set_exception(reply)
                else:
                    caller.set_result(reply)

    def set_exception(self, exc: BaseException) -> None:
        if (
            isinstance(exc, ReplyError)
            and str(exc).startswith("NOSCRIPT")
            and self._command[0] == "EVALSHA"
        ):
            # Redis forgot the wrapper (a restart, SCRIPT FLUSH): send it again with its source.
            self._command[0:2] = ["EVAL", self._owner._scripts[self._command[1]]]
            owner = self._owner
            assert owner._loop is not None
            owner._send(hiredis.pack_command(tuple(self._command)), self, owner._loop)
            return
        self._settled = True
        for caller in self._callers:
            if not caller.done():
                caller.set_exception(exc)


class _Waiter(Protocol):
    """What waits for a reply: a caller's future, or a batch that hands out its replies."""

    def done(self) -> bool: ...

    def set_result(self, result: Any, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


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
        self._waiters: collections.deque[tuple[_Waiter, float]] = collections.deque()
        self._watchdog: asyncio.TimerHandle | None = None
        self._buffer: list[bytes] = []
        self._flush_scheduled = False
        self._scripts: dict[str, bytes] = {}
        # Batched scripts: each one's wrapper SHA1, and the calls waiting for this turn's flush.
        self._wrappers: dict[str, str] = {}
        self._batches: dict[
            tuple[str, str], list[tuple[list[str], list[Any], asyncio.Future[Any]]]
        ] = {}
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

    def register(self, source: str, *, batched: bool = False) -> str:
        """Remember a script's source; returns its SHA1 for `evalsha`. A batched script's calls
        of one loop turn go to Redis together (see the module's docstring)."""
        sha = hashlib.sha1(source.encode()).hexdigest()
        self._scripts[sha] = source.encode()
        if batched:
            self._wrappers[sha] = self.register(_BATCH_WRAPPER % source)
        return sha

    async def evalsha(self, sha: str, keys: list[str], args: list[Any]) -> Any:
        """Run a registered script; loads it if Redis does not know it (after a restart)."""
        if sha in self._wrappers:
            loop = self._loop
            if loop is None or self._transport is None or self._transport.is_closing():
                await self._connect()
                loop = asyncio.get_running_loop()
            waiter: asyncio.Future[Any] = loop.create_future()
            # Calls are batched per hash tag of their first key: a script whose keys share a
            # tag stays within one Redis Cluster slot when batched.
            first = keys[0] if keys else ""
            group = (sha, first[first.find("{") : first.find("}") + 1])
            calls = self._batches.get(group)
            if calls is None:
                calls = self._batches[group] = []
            calls.append((keys, args, waiter))
            if not self._flush_scheduled:
                self._flush_scheduled = True
                loop.call_soon(self._flush)
            return await waiter
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

    def _send(self, packed: bytes, waiter: _Waiter, loop: asyncio.AbstractEventLoop) -> None:
        self._waiters.append((waiter, loop.time() + self._timeout_s))
        self._buffer.append(packed)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        if self._watchdog is None:
            self._watchdog = loop.call_later(self._timeout_s, self._watch)

    def _flush(self) -> None:
        try:
            if self._batches:
                self._send_batches()  # before the flag drops: their _send need not schedule one
        finally:
            self._flush_scheduled = False
        if not self._buffer:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        if self._transport is None or self._transport.is_closing():
            self._fail_all(ConnectionError("the Redis connection was lost"))
            return
        self._transport.write(data)

    def _send_batches(self) -> None:
        """Each batched script's waiting calls as EVALSHAs of its wrapper (a lone call as a plain
        EVALSHA of the script), MAX_BATCH calls per command at most. Calls whose caller is gone
        (cancelled while queued) are not sent."""
        loop = self._loop
        assert loop is not None
        batches, self._batches = self._batches, {}
        for (sha, _), queued in batches.items():
            calls = [call for call in queued if not call[2].done()]
            for start in range(0, len(calls), MAX_BATCH):
                chunk = calls[start : start + MAX_BATCH]
                if len(chunk) > 1:
                    counts: list[int] = []
                    all_keys: list[Any] = []
                    all_args: list[Any] = []
                    for keys, args, _ in chunk:
                        counts += (len(keys), len(args))
                        all_keys += keys
                        all_args += args
                    wrapper = self._wrappers[sha]
                    command = [
                        "EVALSHA",
                        wrapper,
                        len(all_keys),
                        *all_keys,
                        orjson.dumps(counts),
                        *all_args,
                    ]
                    try:
                        packed = hiredis.pack_command(tuple(command))
                    except (TypeError, ValueError):
                        pass  # an argument Redis cannot take: each call alone, below
                    else:
                        callers = [waiter for _, _, waiter in chunk]
                        self._send(packed, _Batch(self, command, callers), loop)
                        continue
                for keys, args, waiter in chunk:
                    command = ["EVALSHA", sha, len(keys), *keys, *args]
                    try:
                        packed = hiredis.pack_command(tuple(command))
                    except (TypeError, ValueError) as exc:
                        waiter.set_exception(exc)  # as an unbatched call fails its own caller
                        continue
                    self._send(packed, _Batch(self, command, [waiter], lone=True), loop)

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
