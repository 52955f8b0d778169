"""A multiplexed Exchange stream to one adapter endpoint: many operations in flight, matched by id.

One long-lived stream carries every operation to an endpoint, the way an ISO 8583 switch
multiplexes one connection by trace number, so an operation costs a stream message instead of
a call. Writes go through one writer task (a gRPC stream takes one write at a time). When the
stream breaks, operations already written have an unknown outcome (PENDING); those not yet
written were certainly not sent. A worker without Exchange answers UNIMPLEMENTED, and the pool
uses the unary RPCs for it instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

import grpc

from payswitch.channel.v1 import channel_service_pb2 as ch
from payswitch.channel.v1 import channel_service_pb2_grpc as ch_grpc

log = logging.getLogger("payswitch.link")


class LinkBroken(Exception):
    """The stream ended before the answer came; `written` says whether the request went out."""

    def __init__(self, message: str, *, written: bool) -> None:
        super().__init__(message)
        self.written = written


@dataclass(slots=True)
class _Op:
    request: ch.ExchangeOperation
    answer: asyncio.Future[ch.ExchangeAnswer]
    written: bool = False


@dataclass(slots=True)
class ExchangeLink:
    """The switch's end of one endpoint's Exchange stream."""

    stub: ch_grpc.ChannelServiceStub
    address: str
    supported: bool | None = None  # None until the first open tells
    _call: Any = None
    _queue: asyncio.Queue[_Op | None] = field(default_factory=asyncio.Queue)
    _inflight: dict[int, _Op] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self._call is not None

    async def open(self) -> None:
        """Open the stream; sets `supported`. Safe to call when already open."""
        if self._call is not None or self.supported is False:
            return
        call = self.stub.Exchange()
        try:
            # Workers send headers as soon as the stream is open.
            await asyncio.wait_for(call.initial_metadata(), 2.0)
        except (grpc.aio.AioRpcError, TimeoutError) as exc:
            call.cancel()
            if (
                isinstance(exc, grpc.aio.AioRpcError)
                and exc.code() == grpc.StatusCode.UNIMPLEMENTED
            ):
                self.supported = False
                log.info(
                    "endpoint has no Exchange; unary calls it is", extra={"endpoint": self.address}
                )
            return
        if call.done():
            if await call.code() == grpc.StatusCode.UNIMPLEMENTED:
                self.supported = False
            return
        # A worker that does not implement Exchange may still send headers first; the reader
        # finds out and the link closes itself.
        self.supported = True
        self._call = call
        self._queue = asyncio.Queue()
        self._tasks = [
            asyncio.create_task(self._write(call), name=f"link-write-{self.address}"),
            asyncio.create_task(self._read(call), name=f"link-read-{self.address}"),
        ]

    async def close(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.cancel()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._fail_all("the link was closed")

    async def send(self, kind: str, request: Any, timeout_s: float) -> ch.ExchangeAnswer:
        """Send one operation and wait for its answer; TimeoutError or LinkBroken otherwise."""
        if self._call is None:
            raise LinkBroken("the link is not open", written=False)
        loop = asyncio.get_running_loop()
        op_id = next(self._ids)
        message = ch.ExchangeOperation(id=op_id, timeout_ms=max(1, int(timeout_s * 1000)))
        getattr(message, kind).CopyFrom(request)
        op = _Op(request=message, answer=loop.create_future())
        self._inflight[op_id] = op
        self._queue.put_nowait(op)
        timer = loop.call_later(timeout_s, _expire, op.answer)
        try:
            return await op.answer
        finally:
            timer.cancel()
            self._inflight.pop(op_id, None)

    async def _write(self, call: Any) -> None:
        # Everything queued while the previous write was under way goes out as one message.
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            while not self._queue.empty():
                op = self._queue.get_nowait()
                if op is None:
                    return
                batch.append(op)
            live = [op for op in batch if not op.answer.done()]  # timed out while queued: not sent
            if not live:
                continue
            try:
                await call.write(ch.ExchangeRequest(operations=[op.request for op in live]))
            except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
                for op in live:
                    if not op.answer.done():
                        error = LinkBroken(f"{self.address}: write failed: {exc}", written=False)
                        op.answer.set_exception(error)
                self._broken(call)
                return
            for op in live:
                op.written = True

    async def _read(self, call: Any) -> None:
        try:
            async for batch in call:
                for answer in batch.answers:
                    op = self._inflight.get(answer.id)
                    if op is not None and not op.answer.done():
                        op.answer.set_result(answer)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                self.supported = False
            if exc.code() != grpc.StatusCode.CANCELLED:
                log.warning(
                    "exchange stream ended",
                    extra={"endpoint": self.address, "code": exc.code().name},
                )
        self._broken(call)

    def _broken(self, call: Any) -> None:
        if self._call is call:
            self._call = None
            call.cancel()
        self._fail_all(f"{self.address}: the exchange stream ended")

    def _fail_all(self, why: str) -> None:
        for op in list(self._inflight.values()):
            if not op.answer.done():
                op.answer.set_exception(LinkBroken(why, written=op.written))
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)


def _expire(answer: asyncio.Future[ch.ExchangeAnswer]) -> None:
    if not answer.done():
        answer.set_exception(TimeoutError())
