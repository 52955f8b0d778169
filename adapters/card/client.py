"""Transport to the acquirer host: persistent framed TCP connections, multiplexed like jPOS QMUX.

Each connection signs on (0800/001) before it carries traffic, sends an echo (0800/301) when
it has been idle for `echo_interval`, and is replaced with capped, jittered exponential
backoff when it drops. Requests are matched to answers by (answer MTI, STAN, terminal id), so
one connection carries many requests at once. When a connection drops, every request in
flight on it fails with ConnectionLostError: it was sent, so its outcome is unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from adapters.card import framing, mapping, spec
from adapters.card.spec import Message
from adapters.sdk.errors import (
    InvalidRequestError,
    OutcomeUnknownError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

log = logging.getLogger(__name__)

Key = tuple[str, str, str]


class ConnectionLostError(OutcomeUnknownError):
    """The connection dropped after the request was written: it may have been processed."""


class StanCounter:
    """System trace audit numbers 000001..999999, wrapping, shared by every connection."""

    def __init__(self, last: int = 0) -> None:
        self._last = last % 999_999

    def reseed(self, last: int) -> None:
        """Continue after `last` (the newest STAN a previous run used)."""
        self._last = last % 999_999

    def next(self) -> str:
        self._last = self._last % 999_999 + 1
        return f"{self._last:06d}"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where the host is and how patient to be with it; all times in seconds."""

    host: str
    port: int
    acceptor: mapping.Acceptor
    connections: int = 1
    connect_timeout: float = 2.0
    response_timeout: float = 5.0
    echo_interval: float = 30.0
    frame_timeout: float = 5.0
    backoff_base: float = 0.2
    backoff_cap: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.connections <= 64:
            raise ValueError("connections: 1 to 64")
        for name in ("connect_timeout", "response_timeout", "echo_interval", "frame_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive")
        if not 0 < self.backoff_base <= self.backoff_cap:
            raise ValueError("backoff_base: must be positive and at most backoff_cap")


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap, base * 2 ** min(attempt, 30)))


class _Connection:
    """One signed-on TCP connection and the requests in flight on it."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, frame_timeout: float
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._frame_timeout = frame_timeout
        self._pending: dict[Key, asyncio.Future[Message]] = {}
        self.closed = asyncio.Event()
        self.last_activity = time.monotonic()
        self.malformed = 0
        self._reader_task = asyncio.create_task(self._read_loop())

    async def send(self, doc: Message, patience: float) -> Message:
        key: Key = (spec.response_mti(doc["t"]), doc["11"], doc.get("41", ""))
        try:
            data = framing.frame(spec.encode(doc))
        except (spec.MessageError, framing.FrameError) as exc:
            raise InvalidRequestError([("message", str(exc))]) from exc
        if self.closed.is_set() or self._writer.is_closing():
            raise UpstreamUnavailableError("connection to the acquirer is closing")
        if key in self._pending:
            raise UpstreamUnavailableError(f"STAN {doc['11']} is already in flight for {key[0]}")
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            try:
                self._writer.write(data)
            except (OSError, RuntimeError) as exc:
                raise UpstreamUnavailableError("connection to the acquirer failed") from exc
            self.last_activity = time.monotonic()
            async with asyncio.timeout(patience):
                await self._writer.drain()
                return await future
        except TimeoutError as exc:
            raise UpstreamTimeoutError(f"no answer to {doc['t']} STAN {doc['11']}") from exc
        except OSError as exc:
            raise ConnectionLostError("connection dropped while sending") from exc
        finally:
            if self._pending.get(key) is future:
                del self._pending[key]

    def answer(self, doc: Message) -> None:
        """Send an answer to a host-initiated request; never waits for anything."""
        with contextlib.suppress(OSError, RuntimeError, spec.MessageError, framing.FrameError):
            self._writer.write(framing.frame(spec.encode(doc)))

    async def _read_loop(self) -> None:
        try:
            while True:
                raw = await framing.read_frame(self._reader, self._frame_timeout)
                self.last_activity = time.monotonic()
                self._dispatch(raw)
        except framing.ConnectionClosed:
            log.warning("acquirer closed the connection")
        except framing.FrameError as exc:
            log.error("acquirer broke framing, dropping the connection: %s", exc)
        except OSError as exc:
            log.warning("connection to the acquirer failed: %s", exc)
        finally:
            self.close()

    def _dispatch(self, raw: bytes) -> None:
        try:
            doc = spec.decode(raw)
        except spec.MessageError as exc:
            # The frame boundary is intact, so the connection is; the request this was meant
            # to answer stays unanswered and times out into the unknown-outcome path.
            self.malformed += 1
            log.error("undecodable message from the acquirer ignored: %s", exc)
            return
        mti = doc["t"]
        if spec.is_request(mti):
            if mti == "0800":
                reply = {k: v for k, v in doc.items() if k in ("7", "11", "41", "70")}
                self.answer({"t": "0810", **reply, "39": mapping.APPROVED})
            return
        future = self._pending.pop((mti, doc.get("11", ""), doc.get("41", "")), None)
        if future is None or future.done():
            log.warning("unmatched %s STAN %s from the acquirer ignored", mti, doc.get("11"))
            return
        future.set_result(doc)

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self._writer.close()
        pending, self._pending = self._pending, {}
        for key, future in pending.items():
            if not future.done():
                future.set_exception(
                    ConnectionLostError(f"connection dropped with {key[0]} STAN {key[1]} in flight")
                )
        if asyncio.current_task() is not self._reader_task:
            self._reader_task.cancel()

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader_task
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


class AcquirerClient:
    """The pool of connections to one acquirer host."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        stan: StanCounter,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._config = config
        self._stan = stan
        self._clock = clock
        self._ready: list[_Connection] = []
        self._round_robin = itertools.count()
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()
        self.reconnects = 0

    @property
    def ready(self) -> bool:
        return bool(self._ready)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._keep_connected(slot), name=f"card-connection-{slot}")
            for slot in range(self._config.connections)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def wait_ready(self, patience: float) -> bool:
        """Wait until at least one connection is signed on; False after `patience` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(patience):
                while not self._ready:
                    self._changed.clear()
                    await self._changed.wait()
        return bool(self._ready)

    async def request(self, doc: Message, patience: float | None = None) -> Message:
        """Send one request and return its answer.

        UpstreamUnavailableError: not sent (no connection). UpstreamTimeoutError or
        ConnectionLostError: sent, outcome unknown.
        """
        if not self._ready:
            raise UpstreamUnavailableError("no signed-on connection to the acquirer")
        conn = self._ready[next(self._round_robin) % len(self._ready)]
        return await conn.send(doc, patience or self._config.response_timeout)

    def next_stan(self) -> str:
        return self._stan.next()

    async def _keep_connected(self, slot: int) -> None:
        failures = 0
        while True:
            conn = await self._connect(slot)
            if conn is None:
                failures += 1
                delay = backoff_delay(failures, self._config.backoff_base, self._config.backoff_cap)
                await asyncio.sleep(delay)
                continue
            failures = 0
            self._ready.append(conn)
            self._changed.set()
            try:
                await self._watch(conn)
            finally:
                if conn in self._ready:
                    self._ready.remove(conn)
                conn.close()
                await conn.wait_closed()
            self.reconnects += 1
            await asyncio.sleep(
                backoff_delay(0, self._config.backoff_base, self._config.backoff_cap)
            )

    async def _connect(self, slot: int) -> _Connection | None:
        cfg = self._config
        try:
            async with asyncio.timeout(cfg.connect_timeout):
                reader, writer = await asyncio.open_connection(cfg.host, cfg.port)
        except (OSError, TimeoutError) as exc:
            log.warning("connection %d to %s:%d failed: %s", slot, cfg.host, cfg.port, exc)
            return None
        conn = _Connection(reader, writer, cfg.frame_timeout)
        if await self._network(conn, mapping.SIGN_ON):
            log.info("connection %d to %s:%d signed on", slot, cfg.host, cfg.port)
            return conn
        log.warning(
            "connection %d to %s:%d: sign-on refused or unanswered", slot, cfg.host, cfg.port
        )
        conn.close()
        await conn.wait_closed()
        return None

    async def _network(self, conn: _Connection, code: str) -> bool:
        doc = mapping.network(
            code, stan=self.next_stan(), now=self._clock(), acceptor=self._config.acceptor
        )
        try:
            answer = await conn.send(doc, self._config.response_timeout)
        except (OutcomeUnknownError, UpstreamUnavailableError, InvalidRequestError):
            return False
        return answer.get("39") == mapping.APPROVED

    async def _watch(self, conn: _Connection) -> None:
        """Echo while idle; return when the connection is gone or stops answering."""
        interval = self._config.echo_interval
        while not conn.closed.is_set():
            idle = time.monotonic() - conn.last_activity
            if idle < interval:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval - idle):
                        await conn.closed.wait()
                continue
            if not await self._network(conn, mapping.ECHO):
                log.warning("echo unanswered, replacing the connection")
                return
