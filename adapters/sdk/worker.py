"""The adapter worker: serves one ChannelAdapter as the Channel gRPC service, with health.

`worker_main(argv, build)` is a channel's whole `main`; `run_worker()` serves an adapter until
SIGTERM or SIGINT; `Worker` is the same server for use inside a running event loop (tests).

What the worker adds around the adapter, so that every channel keeps the contract the same way:
- requests are decoded and validated (`adapters.sdk.convert`) and checked against the
  channel's capabilities before the adapter sees them;
- adapter errors become rich gRPC statuses (ErrorInfo with domain "payswitch" always), except
  an unknown outcome, which is an OK answer with a PENDING result;
- the standard grpc.health.v1 service (SERVING once `adapter.start()` returned) and server
  reflection are served beside the Channel service;
- on SIGTERM: health goes NOT_SERVING, event streams end, calls in flight get `grace_s` to
  finish, then `adapter.stop()`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, NoReturn

import grpc
import uvloop
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from adapters.sdk import convert, framing, runtime
from adapters.sdk.adapter import ChannelAdapter
from adapters.sdk.errors import (
    InvalidRequestError,
    NotSupportedError,
    OutcomeUnknownError,
    UpstreamUnavailableError,
)
from adapters.sdk.exchange_socket import ExchangeSocket
from adapters.sdk.logs import LEVELS, configure_logging
from adapters.sdk.types import (
    AuthorizeRequest,
    Capabilities,
    Card,
    ChannelEvent,
    OperationResult,
    OperationStatus,
    PaymentMethodType,
    RefundRequest,
)
from payswitch.channel.v1 import channel_service_pb2 as ch
from payswitch.channel.v1 import channel_service_pb2_grpc as ch_grpc
from payswitch.common.v1 import error_reason_pb2

log = logging.getLogger("payswitch.worker")

SERVICE_NAME: str = ch.DESCRIPTOR.services_by_name["ChannelService"].full_name
DOMAIN = "payswitch"
_SERVING = health_pb2.HealthCheckResponse.SERVING


def rich_status(
    code: int,
    reason: error_reason_pb2.ErrorReason.ValueType,
    message: str,
    *details: Message,
    channel: str = "",
) -> grpc.Status:
    """A gRPC status carrying google.rpc.ErrorInfo (domain payswitch) and `details`."""
    info = error_details_pb2.ErrorInfo(
        reason=error_reason_pb2.ErrorReason.Name(reason),
        domain=DOMAIN,
        metadata={"channel": channel} if channel else None,
    )
    status = status_pb2.Status(code=code, message=message)
    for detail in (info, *details):
        status.details.add().Pack(detail)
    return rpc_status.to_status(status)


def status_for(exc: Exception, channel: str) -> grpc.Status | None:
    """The status an adapter error maps to; None when it is not one that refuses the call."""
    if isinstance(exc, InvalidRequestError):
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in exc.violations
            ]
        )
        reason = error_reason_pb2.ERROR_REASON_INVALID_REQUEST
        return rich_status(code_pb2.INVALID_ARGUMENT, reason, exc.message, bad, channel=channel)
    if isinstance(exc, NotSupportedError):
        reason = error_reason_pb2.ERROR_REASON_OPERATION_NOT_SUPPORTED
        return rich_status(code_pb2.FAILED_PRECONDITION, reason, exc.message, channel=channel)
    if isinstance(exc, UpstreamUnavailableError):
        reason = error_reason_pb2.ERROR_REASON_UPSTREAM_UNAVAILABLE
        return rich_status(code_pb2.UNAVAILABLE, reason, exc.message, channel=channel)
    return None


def check_authorize(caps: Capabilities, request: AuthorizeRequest) -> None:
    """Refuse, with NotSupportedError, an authorization outside the channel's capabilities."""
    method = request.payment_method
    kind = PaymentMethodType.CARD if isinstance(method, Card) else method.type
    if kind not in caps.payment_methods:
        raise NotSupportedError(f"channel {caps.name} does not accept {kind.name.lower()}")
    amount = request.amount
    if amount.currency not in caps.currencies:
        raise NotSupportedError(f"channel {caps.name} does not accept {amount.currency}")
    if amount.amount_minor < caps.min_amount_minor or (
        caps.max_amount_minor and amount.amount_minor > caps.max_amount_minor
    ):
        raise NotSupportedError(
            f"channel {caps.name} accepts amounts from {caps.min_amount_minor} to "
            f"{caps.max_amount_minor or 'any'} minor units"
        )
    if not request.capture and not caps.supports_manual_capture:
        raise NotSupportedError(f"channel {caps.name} does not support manual capture")


def check_capture(caps: Capabilities, amount: int, authorized: int) -> None:
    if not caps.supports_manual_capture:
        raise NotSupportedError(f"channel {caps.name} does not support manual capture")
    if amount < authorized and not caps.supports_partial_capture:
        raise NotSupportedError(f"channel {caps.name} does not support partial capture")


def check_void(caps: Capabilities) -> None:
    if not caps.supports_void:
        raise NotSupportedError(f"channel {caps.name} does not support void")


def check_refund(caps: Capabilities, request: RefundRequest) -> None:
    if not caps.supports_refund:
        raise NotSupportedError(f"channel {caps.name} does not support refunds")
    partial = request.amount.amount_minor < request.captured_amount.amount_minor
    if partial and not caps.supports_partial_refund:
        raise NotSupportedError(f"channel {caps.name} does not support partial refunds")


def check_capabilities(caps: Capabilities) -> None:
    """Raise ValueError naming the problem when an adapter describes itself wrongly."""
    if convert.CHANNEL_NAME.fullmatch(caps.name) is None:
        raise ValueError(f"capabilities.name: must match [a-z0-9_]{{1,32}}, got {caps.name!r}")
    if not caps.payment_methods:
        raise ValueError("capabilities.payment_methods: must name at least one method")
    bad = sorted(c for c in caps.currencies if convert.CURRENCY.fullmatch(c) is None)
    if not caps.currencies or bad:
        raise ValueError(f"capabilities.currencies: need ISO 4217 codes, got {bad or 'none'}")
    if caps.min_amount_minor < 1 or caps.max_amount_minor < 0:
        raise ValueError("capabilities: min_amount_minor must be >= 1, max_amount_minor >= 0")
    if caps.max_amount_minor and caps.max_amount_minor < caps.min_amount_minor:
        raise ValueError("capabilities.max_amount_minor: must be 0 or >= min_amount_minor")


_Queue = asyncio.Queue[ChannelEvent | None]


class Subscription:
    """One open event stream of an EventHub; iterate it, and close() it when done."""

    def __init__(
        self,
        streams: set[asyncio.Queue[ChannelEvent | None]],
        queue: asyncio.Queue[ChannelEvent | None],
    ) -> None:
        self._streams = streams
        self._queue = queue

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> ChannelEvent:
        event = await self._queue.get()
        if event is None:
            self.close()
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        self._streams.discard(self._queue)


class EventHub:
    """The EventSink the worker hands to the adapter: fans each event out to every open
    WatchEvents stream, and keeps up to `buffer` events while none is open (oldest dropped)."""

    def __init__(self, *, buffer: int = 10_000) -> None:
        self._buffer = buffer
        self._backlog: deque[ChannelEvent] = deque(maxlen=buffer)
        self._streams: set[_Queue] = set()
        self._closed = False
        self.dropped = 0

    def publish(self, event: ChannelEvent) -> None:
        """Hand an event to every open stream; call it from the worker's event loop."""
        if self._closed:
            self._drop(event, "worker stopping")
        elif not self._streams:
            if len(self._backlog) == self._buffer:
                self._drop(self._backlog[0], "no stream open and the backlog is full")
            self._backlog.append(event)
        for queue in self._streams:
            if queue.qsize() >= self._buffer:
                dropped = queue.get_nowait()
                if dropped is not None:
                    self._drop(dropped, "stream not keeping up")
            queue.put_nowait(event)

    def subscribe(self) -> Subscription:
        """A stream of events from now on (the first one also gets the backlog) until `close()`.

        It is registered at once, so nothing published after this call is missed.
        """
        queue: _Queue = asyncio.Queue()
        if self._closed:
            queue.put_nowait(None)
            return Subscription(self._streams, queue)
        while self._backlog:
            queue.put_nowait(self._backlog.popleft())
        self._streams.add(queue)
        return Subscription(self._streams, queue)

    def close(self) -> None:
        """End every stream; later events are dropped."""
        self._closed = True
        for queue in self._streams:
            queue.put_nowait(None)

    def _drop(self, event: ChannelEvent, why: str) -> None:
        self.dropped += 1
        log.warning("event dropped", extra={"reference": event.reference, "why": why})


Run = Callable[[], Awaitable[OperationResult]]


class ChannelServicer(ch_grpc.ChannelServiceServicer):
    """The Channel service over one adapter: decode, check, call, map the outcome."""

    def __init__(self, adapter: ChannelAdapter, hub: EventHub, caps: Capabilities) -> None:
        self._adapter = adapter
        self._hub = hub
        self._caps = caps
        self._closing = asyncio.Event()
        self.exchange_address = ""  # the Exchange socket's, once the worker serves one
        self._runs: dict[str, Callable[[Any], Awaitable[OperationResult]]] = {
            "authorize": self._authorize,
            "capture": self._capture,
            "void": self._void,
            "refund": self._refund,
            "inquire": self._inquire,
        }

    def close_streams(self) -> None:
        """End every Exchange stream once its operations in flight are answered."""
        self._closing.set()

    async def _outcome(self, op: str, reference: str, run: Run) -> ch.OperationResult | grpc.Status:
        """The operation's result, or the status that refuses it."""
        try:
            result = await run()
        except OutcomeUnknownError as exc:
            extra = {"op": op, "reference": reference, "error": str(exc)}
            log.warning("outcome unknown", extra=extra)
            result = OperationResult.pending(exc.message)
        except Exception as exc:
            status = status_for(exc, self._caps.name)
            if status is not None:
                return status
            log.exception("adapter failed", extra={"op": op, "reference": reference})
            if op == "inquire":
                reason = error_reason_pb2.ERROR_REASON_INTERNAL
                message = f"channel {self._caps.name} failed to inquire: {type(exc).__name__}"
                return rich_status(code_pb2.INTERNAL, reason, message)
            # A state-changing call failed in a way nobody foresaw: it may have reached the
            # upstream, so the only honest answer is that the outcome is unknown.
            result = OperationResult.pending(f"outcome unknown: {type(exc).__name__}")
        if result.status is OperationStatus.NOT_FOUND and op != "inquire":
            log.error("adapter answered NOT_FOUND outside inquire", extra={"op": op})
            result = OperationResult.pending("outcome unknown: adapter answered NOT_FOUND")
        return convert.result_to_proto(result)

    async def _operate(
        self, context: grpc.aio.ServicerContext[Any, Any], op: str, reference: str, run: Run
    ) -> ch.OperationResult:
        outcome = await self._outcome(op, reference, run)
        if isinstance(outcome, grpc.Status):
            await _abort(context, outcome)
        return outcome

    async def _authorize(self, request: ch.AuthorizeRequest) -> OperationResult:
        decoded = convert.authorize_request_from_proto(request)
        check_authorize(self._caps, decoded)
        return await self._adapter.authorize(decoded)

    async def _capture(self, request: ch.CaptureRequest) -> OperationResult:
        decoded = convert.capture_request_from_proto(request)
        amount, authorized = decoded.amount, decoded.authorized_amount
        check_capture(self._caps, amount.amount_minor, authorized.amount_minor)
        return await self._adapter.capture(decoded)

    async def _void(self, request: ch.VoidRequest) -> OperationResult:
        decoded = convert.void_request_from_proto(request)
        check_void(self._caps)
        return await self._adapter.void(decoded)

    async def _refund(self, request: ch.RefundRequest) -> OperationResult:
        decoded = convert.refund_request_from_proto(request)
        check_refund(self._caps, decoded)
        return await self._adapter.refund(decoded)

    async def _inquire(self, request: ch.InquireRequest) -> OperationResult:
        return await self._adapter.inquire(convert.inquire_request_from_proto(request))

    async def Authorize(
        self, request: ch.AuthorizeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ch.AuthorizeResponse:
        run = functools.partial(self._authorize, request)
        return ch.AuthorizeResponse(
            result=await self._operate(context, "authorize", request.reference, run)
        )

    async def Capture(
        self, request: ch.CaptureRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ch.CaptureResponse:
        run = functools.partial(self._capture, request)
        return ch.CaptureResponse(
            result=await self._operate(context, "capture", request.reference, run)
        )

    async def Void(
        self, request: ch.VoidRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ch.VoidResponse:
        run = functools.partial(self._void, request)
        return ch.VoidResponse(result=await self._operate(context, "void", request.reference, run))

    async def Refund(
        self, request: ch.RefundRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ch.RefundResponse:
        run = functools.partial(self._refund, request)
        return ch.RefundResponse(
            result=await self._operate(context, "refund", request.reference, run)
        )

    async def Inquire(
        self, request: ch.InquireRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ch.InquireResponse:
        run = functools.partial(self._inquire, request)
        return ch.InquireResponse(
            result=await self._operate(context, "inquire", request.reference, run)
        )

    async def answer(self, req: ch.ExchangeOperation) -> ch.ExchangeAnswer:
        """One operation of an Exchange batch (the RPC's or the socket's), answered."""
        kind = req.WhichOneof("operation")
        if kind is None:
            reason = error_reason_pb2.ERROR_REASON_INVALID_REQUEST
            message = "operation: is required (authorize, capture, void, refund or inquire)"
            outcome: ch.OperationResult | grpc.Status = rich_status(
                code_pb2.INVALID_ARGUMENT, reason, message
            )
        else:
            op = getattr(req, kind)
            run = functools.partial(self._runs[kind], op)
            outcome = await self._outcome(kind, op.reference, run)
        if isinstance(outcome, grpc.Status):
            return ch.ExchangeAnswer(id=req.id, error=_status_proto(outcome))
        return ch.ExchangeAnswer(id=req.id, result=outcome)

    async def Exchange(
        self,
        request_iterator: AsyncIterator[ch.ExchangeRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[ch.ExchangeResponse]:
        """Many operations on one stream; each answered under its id as soon as it is done.

        Answers ready together go out together in one message, as the switch sends operations.
        """
        answers: asyncio.Queue[ch.ExchangeAnswer | None] = asyncio.Queue()
        running: set[asyncio.Task[None]] = set()

        async def one(req: ch.ExchangeOperation) -> None:
            answers.put_nowait(await self.answer(req))

        loop = asyncio.get_running_loop()

        async def read() -> None:
            try:
                async for batch in request_iterator:
                    for req in batch.operations:
                        task = loop.create_task(one(req))
                        running.add(task)
                        task.add_done_callback(running.discard)
            finally:
                if running:
                    await asyncio.wait(list(running))
                answers.put_nowait(None)

        # Headers at once: the caller knows the stream is open before its first operation.
        await context.send_initial_metadata(())
        reader = asyncio.create_task(read())
        # At shutdown the worker takes no new operations, answers those it has, and ends the
        # stream, so that its server can stop within the grace period.
        closing = asyncio.create_task(self._closing.wait())
        closing.add_done_callback(lambda _: reader.cancel())
        try:
            while (first := await answers.get()) is not None:
                batch = ch.ExchangeResponse(answers=[first])
                ended = False
                while not answers.empty():
                    more = answers.get_nowait()
                    if more is None:
                        ended = True
                        break
                    batch.answers.append(more)
                yield batch
                if ended:
                    break
        finally:
            closing.cancel()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def Describe(
        self, request: ch.DescribeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ch.DescribeResponse:
        try:
            caps = self._adapter.capabilities()
            check_capabilities(caps)
        except Exception:
            log.exception("adapter failed to describe itself")
            reason = error_reason_pb2.ERROR_REASON_INTERNAL
            message = "the channel failed to describe itself"
            await _abort(context, rich_status(code_pb2.INTERNAL, reason, message))
        self._caps = caps
        described = convert.capabilities_to_proto(caps)
        described.exchange_address = self.exchange_address
        return described

    async def WatchEvents(
        self, request: ch.WatchEventsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[ch.WatchEventsResponse]:
        subscription = self._hub.subscribe()
        try:
            # Initial metadata tells the caller the stream is open and will miss nothing.
            await context.send_initial_metadata(())
            async for event in subscription:
                yield convert.event_to_proto(event)
        finally:
            subscription.close()


def _status_proto(status: grpc.Status) -> status_pb2.Status:
    """The google.rpc.Status inside a rich grpc.Status, to send inside a stream message."""
    for key, value in status.trailing_metadata:
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    return status_pb2.Status(code=status.code.value[0], message=status.details)


def _refused_at_shutdown(op_id: int) -> ch.ExchangeAnswer:
    status = rich_status(
        code_pb2.UNAVAILABLE,
        error_reason_pb2.ERROR_REASON_UPSTREAM_UNAVAILABLE,
        "the worker is shutting down; the operation was not sent",
    )
    return ch.ExchangeAnswer(id=op_id, error=_status_proto(status))


async def _abort(context: grpc.aio.ServicerContext[Any, Any], status: grpc.Status) -> NoReturn:
    await context.abort_with_status(status)
    raise AssertionError("abort_with_status returned")  # grpc raises; this is never reached


class Worker:
    """One adapter served on one address; `start()` and `stop()` inside a running loop."""

    def __init__(
        self,
        adapter: ChannelAdapter,
        *,
        listen: str,
        grace_s: float = 5.0,
        event_buffer: int = 10_000,
        exchange_listen: str | None = "auto",
    ) -> None:
        """`exchange_listen` is where to serve the Exchange socket: "auto" (the gRPC host with
        a port the system picks, or the gRPC Unix path plus ".exchange"), an address, or None
        for no socket (the switch then uses the Exchange RPC)."""
        self._adapter = adapter
        self._listen = listen
        self._exchange_listen = (
            framing.listen_address(listen) if exchange_listen == "auto" else exchange_listen
        )
        self._socket: ExchangeSocket | None = None
        self._grace_s = grace_s
        self.events = EventHub(buffer=event_buffer)
        self._health = health.aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._servicer: ChannelServicer | None = None
        self.port = 0

    async def start(self) -> int:
        """Start the adapter, then listen; returns the port (useful with port 0)."""
        caps = self._adapter.capabilities()
        check_capabilities(caps)
        await self._health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._adapter.start(self.events)
        # The port is bound only now, so that a connectable worker is a ready worker.
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        self._servicer = ChannelServicer(self._adapter, self.events, caps)
        ch_grpc.add_ChannelServiceServicer_to_server(self._servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        try:
            self.port = server.add_insecure_port(self._listen)
        except RuntimeError:
            await self._adapter.stop()
            raise
        self._server = server
        await server.start()
        if self._exchange_listen is not None:
            self._socket = ExchangeSocket(self._servicer.answer, _refused_at_shutdown)
            try:
                self._servicer.exchange_address = await self._socket.start(self._exchange_listen)
            except OSError:
                await server.stop(0)
                await self._adapter.stop()
                raise
        await self._health.set("", _SERVING)
        await self._health.set(SERVICE_NAME, _SERVING)
        log.info(
            "worker ready",
            extra={
                "channel": caps.name,
                "listen": self._listen,
                "port": self.port,
                "exchange_socket": self._servicer.exchange_address or "off",
            },
        )
        return self.port

    async def stop(self) -> None:
        """NOT_SERVING, end event streams, let calls in flight finish within grace, stop."""
        if self._server is None:
            return
        server, self._server = self._server, None
        await self._health.enter_graceful_shutdown()
        self.events.close()
        if self._servicer is not None:
            self._servicer.close_streams()
        socket, self._socket = self._socket, None
        await asyncio.gather(
            server.stop(self._grace_s),
            *([socket.stop(self._grace_s)] if socket is not None else []),
        )
        try:
            await self._adapter.stop()
        except Exception:
            log.exception("adapter failed to stop cleanly")
        log.info("worker stopped")


async def serve_worker(
    adapter: ChannelAdapter,
    *,
    listen: str,
    grace_s: float = 5.0,
    stop: asyncio.Event | None = None,
    exchange_listen: str | None = "auto",
    tune_gc: bool = False,
) -> int:
    """Serve until SIGTERM/SIGINT (or `stop` is set); 0 after a clean stop, 1 if start failed.
    `tune_gc`: tune the process's garbage collector once started (adapters/sdk/runtime.py),
    as `run_worker` does for a worker process of its own."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(adapter, listen=listen, grace_s=grace_s, exchange_listen=exchange_listen)
    try:
        try:
            await worker.start()
        except (OSError, RuntimeError, ValueError) as exc:
            log.error("worker failed to start", extra={"listen": listen, "error": str(exc)})
            return 1
        if tune_gc:
            runtime.tune_gc()
        await stop.wait()
        log.info("stopping", extra={"grace_s": grace_s})
        await worker.stop()
        return 0
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run_worker(
    adapter: ChannelAdapter,
    *,
    listen: str,
    grace_s: float = 5.0,
    exchange_listen: str | None = "auto",
) -> int:
    """Serve `adapter` on `listen` on a uvloop event loop until SIGTERM or SIGINT."""
    return uvloop.run(
        serve_worker(
            adapter, listen=listen, grace_s=grace_s, exchange_listen=exchange_listen, tune_gc=True
        )
    )


def worker_main(
    argv: Sequence[str],
    build: Callable[[argparse.Namespace], ChannelAdapter],
    *,
    prog: str = "payswitch adapter",
    description: str | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """A channel's whole `main(argv)`: common flags, the channel's own flags, then serve.

    `build` turns the parsed flags into the adapter; a ValueError from it is a bad flag, printed
    with exit status 2.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--listen", required=True, help="HOST:PORT or unix:PATH to serve on")
    parser.add_argument(
        "--exchange-listen",
        default="auto",
        help="where to serve Exchange without HTTP/2 (HOST:PORT or unix:PATH); 'auto' (default):"
        " the --listen host on a free port, or the --listen path plus '.exchange'; 'off': none",
    )
    parser.add_argument(
        "--grace-s", type=float, default=5.0, help="seconds calls in flight get at shutdown"
    )
    parser.add_argument("--log-level", default="INFO", choices=LEVELS)
    if add_arguments is not None:
        add_arguments(parser)
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # argparse exits on --help and on bad flags; main returns instead
        return exc.code if isinstance(exc.code, int) else 2
    configure_logging(args.log_level)
    try:
        adapter = build(args)
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    exchange = None if args.exchange_listen == "off" else args.exchange_listen
    return run_worker(adapter, listen=args.listen, grace_s=args.grace_s, exchange_listen=exchange)
