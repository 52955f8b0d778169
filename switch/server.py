"""The GatewayService servicer: authentication, validation, protos in and out, errors to status.

Protos stop here: requests are checked and turned into calls on PaymentService, and payments
come back as protos. Every answer carries the trailer `x-switch-overhead-us`, the time the switch
spent on the request excluding channel calls, so load tests can separate the two.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf import timestamp_pb2
from grpc_status import rpc_status

from adapters.sdk.runtime import IdleCollector
from payswitch.common.v1 import money_pb2
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from payswitch.gateway.v1 import payment_pb2
from switch import errors, validation, wire
from switch.config import MerchantConfig
from switch.metrics import Metrics
from switch.model import (
    OP_AUTHORIZE,
    OP_CAPTURE,
    OP_REFUND,
    OP_VOID,
    REVIEW_APPROVED,
    REVIEW_HELD,
    STATUS_PENDING,
    Decline,
    Operation,
    Payment,
)
from switch.payments import PaymentService, Timing
from switch.store import Store
from switch.watch import WatchHub

log = logging.getLogger("payswitch.server")

R = TypeVar("R")
OVERHEAD_TRAILER = "x-switch-overhead-us"
# Requests come as bytes (see `register`): bytes that are no request are INVALID_ARGUMENT.
_parse = validation.parse
_WATCH_POLL_S = 1.0


# Responses are filled in field by field: protobuf makes each nested message in place as its
# first field is set. (From nested dicts they cost a third more; from messages made first, each
# copied into its parent, half as much again.) Enum fields take the model's `_value_`, an int,
# where protobuf's stubs name their own ValueType: hence the `type: ignore`s.
_AUTOMATIC = payment_pb2.CAPTURE_MODE_AUTOMATIC
_MANUAL = payment_pb2.CAPTURE_MODE_MANUAL


def _set_money(out: money_pb2.Money, amount: int, currency: str) -> None:
    out.amount_minor = amount
    out.currency = currency


def _set_time(out: timestamp_pb2.Timestamp, ms: int) -> None:
    out.seconds = ms // 1000
    out.nanos = (ms % 1000) * 1_000_000


def _set_decline(out: payment_pb2.Decline, d: Decline) -> None:
    out.code = d.code  # type: ignore[assignment]
    out.raw_code = d.raw_code
    out.message = d.message


def fill_payment(out: payment_pb2.Payment, p: Payment) -> None:
    """Write the caller's view of a payment into `out`, an empty payment_pb2.Payment."""
    cur = p.currency
    out.id = p.id
    out.merchant_reference = p.merchant_reference
    out.status = p.status._value_  # type: ignore[assignment]
    _set_money(out.amount, p.amount, cur)
    _set_money(out.authorized_amount, p.authorized, cur)
    _set_money(out.captured_amount, p.captured, cur)
    _set_money(out.refunded_amount, p.refunded, cur)
    out.capture_mode = _AUTOMATIC if p.auto_capture else _MANUAL
    method = p.method
    summary = out.payment_method
    summary.type = method.type._value_  # type: ignore[assignment]
    summary.card_bin = method.card_bin
    summary.card_last4 = method.card_last4
    summary.card_expiry_month = method.expiry_month
    summary.card_expiry_year = method.expiry_year
    summary.fingerprint = method.fingerprint
    out.channel = p.channel
    out.upstream_reference = p.upstream_reference
    out.authorization_code = p.authorization_code
    if p.decline is not None:
        _set_decline(out.decline, p.decline)
    pending = p.status is STATUS_PENDING
    if pending and p.pending_op:
        out.pending_operation = p.pending_op._value_  # type: ignore[assignment]
    for r in p.refunds:
        refund = out.refunds.add()
        refund.id = r.id
        _set_money(refund.amount, r.amount, cur)
        refund.reason = r.reason
        refund.status = r.status._value_  # type: ignore[assignment]
        _set_time(refund.create_time, r.time_ms)
    for e in p.events:
        event = out.events.add()
        event.operation = e.operation._value_  # type: ignore[assignment]
        event.status = e.status._value_  # type: ignore[assignment]
        _set_money(event.amount, e.amount, cur)
        event.channel_reference = e.reference
        if e.decline is not None:
            _set_decline(event.decline, e.decline)
        _set_time(event.time, e.time_ms)
    _set_time(out.create_time, p.create_ms)
    _set_time(out.update_time, p.update_ms)
    out.status_message = p.status_message
    risk = p.risk
    if risk is not None:
        assessment = out.risk
        assessment.decision = risk.decision._value_  # type: ignore[assignment]
        assessment.rule = risk.rule
        assessment.anomaly_score = risk.score_milli / 1000
        if risk.review is not None:
            assessment.review = risk.review._value_  # type: ignore[assignment]
    if pending:
        held = risk is not None and risk.review in (REVIEW_HELD, REVIEW_APPROVED)
        out.pending_reason = (
            payment_pb2.PENDING_REASON_RISK_REVIEW
            if held
            else payment_pb2.PENDING_REASON_OUTCOME_UNKNOWN
        )


def payment_proto(p: Payment) -> payment_pb2.Payment:
    """The caller's view of a payment."""
    out = payment_pb2.Payment()
    fill_payment(out, p)
    return out


def render(op: Operation, p: Payment) -> bytes:
    """The serialized response of the RPC that `op` came from, as idempotent replays send it."""
    if op is OP_AUTHORIZE:
        response: Any = gw.AuthorizeResponse()
    elif op is OP_CAPTURE:
        response = gw.CaptureResponse()
    elif op is OP_VOID:
        response = gw.VoidResponse()
    else:
        response = gw.RefundResponse()
        fill_payment(response.payment, p)
        # The refund this response is about is the one the payment's latest event recorded.
        latest = p.events[-1].reference if p.events else ""
        for refund in response.payment.refunds:
            if refund.id == latest:
                response.refund.CopyFrom(refund)
                break
        return bytes(response.SerializeToString())
    fill_payment(response.payment, p)
    return bytes(response.SerializeToString())


class GatewayServicer:
    """payswitch.gateway.v1.GatewayService."""

    def __init__(
        self,
        *,
        merchants: Mapping[str, MerchantConfig],
        payments: PaymentService,
        store: Store,
        hub: WatchHub,
        metrics: Metrics,
        idle: IdleCollector | None = None,
    ) -> None:
        self._by_key_hash = {m.api_key_sha256: m for m in merchants.values()}
        # Authorization values seen to carry a valid key, so that a known caller's value is not
        # parsed and hashed again on every call. Only a hit adds one, and only in the form
        # `Bearer <key>` exactly: unknown tokens (anyone's guesses) and a valid key written
        # otherwise are parsed and hashed each time and never kept (one entry per merchant).
        self._by_header: dict[str | bytes, MerchantConfig] = {}
        self._payments = payments
        self._store = store
        self._hub = hub
        self._metrics = metrics
        # Garbage is collected between payments, not during them (see adapters/sdk/runtime.py).
        self._idle = idle or IdleCollector()
        self._stream_ops: dict[
            str, Callable[[MerchantConfig, Any, float | None, Timing], Awaitable[bytes]]
        ] = {
            "authorize": self._authorize,
            "capture": self._capture,
            "void": self._void,
            "refund": self._refund,
        }

    # --- plumbing -------------------------------------------------------------------------

    def _merchant(self, context: grpc.aio.ServicerContext) -> MerchantConfig:
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                found = self._by_header.get(value)
                if found is None:
                    token = validation.bearer_token(value)
                    if token:
                        found = self._by_key_hash.get(hashlib.sha256(token.encode()).hexdigest())
                    if found is not None and value == "Bearer " + token:
                        self._by_header[value] = found
                if found is not None:
                    return found
                break
        raise errors.Unauthenticated(
            "missing or unknown API key: send 'authorization: Bearer <key>'"
        )

    async def _run(
        self,
        rpc: str,
        context: grpc.aio.ServicerContext,
        body: Callable[[MerchantConfig, Timing], Awaitable[R]],
    ) -> R:
        start = time.perf_counter()
        timing = Timing()
        code = "OK"
        self._idle.begin()
        try:
            return await body(self._merchant(context), timing)
        except errors.SwitchError as exc:
            code = exc.code.name
            if isinstance(exc, errors.StoreUnavailable):
                self._metrics.store_errors.inc()
            self._trailer(context, start, timing)
            await context.abort_with_status(rpc_status.to_status(errors.to_status(exc)))
            raise  # unreachable: abort raises
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except Exception:
            code = "INTERNAL"
            log.exception("unexpected failure", extra={"rpc": rpc})
            self._trailer(context, start, timing)
            await context.abort_with_status(
                rpc_status.to_status(
                    errors.to_status(errors.SwitchError("internal error in the switch"))
                )
            )
            raise
        finally:
            self._idle.end()
            elapsed = time.perf_counter() - start
            self._metrics.request_done(rpc, code, elapsed, max(0.0, elapsed - timing.channel_s))
            if code == "OK":
                self._trailer(context, start, timing)

    @staticmethod
    def _trailer(context: grpc.aio.ServicerContext, start: float, timing: Timing) -> None:
        us = int((time.perf_counter() - start - timing.channel_s) * 1_000_000)
        context.set_trailing_metadata(((OVERHEAD_TRAILER, str(max(0, us))),))

    @staticmethod
    def _deadline(context: grpc.aio.ServicerContext) -> float | None:
        remaining = context.time_remaining()
        return remaining if remaining is not None and remaining < 1e6 else None

    # --- the state-changing operations, shared by the unary RPCs and StreamPayments ---------

    async def _authorize(
        self,
        m: MerchantConfig,
        request: gw.AuthorizeRequest,
        deadline_s: float | None,
        timing: Timing,
    ) -> bytes:
        validation.authorize(request, max_amount_minor=m.max_amount_minor)
        return await self._payments.authorize(
            merchant=m,
            idempotency_key=request.idempotency_key,
            canonical=_canonical_authorize(request),
            amount=request.amount.amount_minor,
            currency=request.amount.currency,
            method=request.payment_method,
            auto_capture=request.capture_mode == payment_pb2.CAPTURE_MODE_AUTOMATIC,
            merchant_reference=request.merchant_reference,
            description=request.description,
            deadline_s=deadline_s,
            timing=timing,
        )

    async def _capture(
        self,
        m: MerchantConfig,
        request: gw.CaptureRequest,
        deadline_s: float | None,
        timing: Timing,
    ) -> bytes:
        validation.capture(request, max_amount_minor=m.max_amount_minor)
        amount = request.amount if request.HasField("amount") else None
        return await self._follow_up(OP_CAPTURE, m, request, amount, "", deadline_s, timing)

    async def _void(
        self, m: MerchantConfig, request: gw.VoidRequest, deadline_s: float | None, timing: Timing
    ) -> bytes:
        validation.void(request)
        return await self._follow_up(OP_VOID, m, request, None, request.reason, deadline_s, timing)

    async def _refund(
        self, m: MerchantConfig, request: gw.RefundRequest, deadline_s: float | None, timing: Timing
    ) -> bytes:
        validation.refund(request, max_amount_minor=m.max_amount_minor)
        amount = request.amount if request.HasField("amount") else None
        return await self._follow_up(
            OP_REFUND, m, request, amount, request.reason, deadline_s, timing
        )

    async def _follow_up(
        self,
        op: Operation,
        m: MerchantConfig,
        request: Any,
        amount: money_pb2.Money | None,
        reason: str,
        deadline_s: float | None,
        timing: Timing,
    ) -> bytes:
        return await self._payments.follow_up(
            op=op,
            merchant=m,
            idempotency_key=request.idempotency_key,
            canonical=_canonical(request),
            payment_id=request.payment_id,
            amount=amount.amount_minor if amount is not None else None,
            currency=amount.currency if amount is not None else "",
            reason=reason,
            deadline_s=deadline_s,
            timing=timing,
        )

    # --- RPCs -----------------------------------------------------------------------------

    # Requests arrive as the bytes the caller sent (see `register`) and are parsed inside `_run`,
    # after the API key is checked, so that bytes protobuf cannot parse are INVALID_ARGUMENT.

    async def Authorize(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        deadline = self._deadline(context)
        return await self._run(
            "Authorize",
            context,
            lambda m, t: self._authorize(m, _parse(gw.AuthorizeRequest, data), deadline, t),
        )

    async def Capture(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        deadline = self._deadline(context)
        return await self._run(
            "Capture",
            context,
            lambda m, t: self._capture(m, _parse(gw.CaptureRequest, data), deadline, t),
        )

    async def Void(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        deadline = self._deadline(context)
        return await self._run(
            "Void", context, lambda m, t: self._void(m, _parse(gw.VoidRequest, data), deadline, t)
        )

    async def Refund(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        deadline = self._deadline(context)
        return await self._run(
            "Refund",
            context,
            lambda m, t: self._refund(m, _parse(gw.RefundRequest, data), deadline, t),
        )

    async def StreamPayments(
        self,
        request_iterator: AsyncIterator[bytes],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[bytes]:
        """Many operations on one stream, each answered on its own as soon as it is done.

        Answers carry their request's id, so ids must be unique among the requests in flight: a
        request whose id is already in flight on the stream is not run (nothing is stored or
        forwarded) and is answered INVALID_ARGUMENT with a violation on `id`. Once an id's
        answer has gone out, the id may be used again."""

        async def singles() -> AsyncIterator[Sequence[gw.StreamPaymentsRequest]]:
            async for data in request_iterator:
                yield (_parse(gw.StreamPaymentsRequest, data),)

        async for answer in self._stream(singles(), context, batched=False):
            yield answer

    async def StreamPaymentBatches(
        self,
        request_iterator: AsyncIterator[bytes],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[bytes]:
        """StreamPayments with many requests per message and the ready answers grouped; ids
        in flight are refused as there, within a message and across messages alike."""

        async def batches() -> AsyncIterator[Sequence[gw.StreamPaymentsRequest]]:
            async for data in request_iterator:
                message = _parse(gw.StreamPaymentBatchesRequest, data)
                if len(message.requests) > MAX_STREAM_BATCH:
                    raise errors.InvalidRequest(
                        [("requests", f"at most {MAX_STREAM_BATCH} requests per message")]
                    )
                yield message.requests

        async for answer in self._stream(batches(), context, batched=True):
            yield answer

    async def _stream(
        self,
        incoming: AsyncIterator[Sequence[gw.StreamPaymentsRequest]],
        context: grpc.aio.ServicerContext,
        *,
        batched: bool,
    ) -> AsyncIterator[bytes]:
        try:
            m = self._merchant(context)
        except errors.SwitchError as exc:
            await context.abort_with_status(rpc_status.to_status(errors.to_status(exc)))
            return
        loop = asyncio.get_running_loop()
        outbox = _Outbox(loop)
        running: set[asyncio.Task[None]] = set()
        # Ids of the requests running, each until its answer is in the outbox: a second request
        # under one of them would be answered under the same id, so it is refused instead.
        in_flight: set[int] = set()
        refused: list[errors.SwitchError] = []
        # Answers of StreamPaymentBatches go out as field 1 of a batch response each.
        outer = batched

        async def one(req: gw.StreamPaymentsRequest, rid: int) -> None:
            kind = req.WhichOneof("request")
            start = time.perf_counter()
            code = "OK"
            self._idle.begin()
            try:
                if kind is None:
                    raise errors.InvalidRequest(
                        [("request", "is required: one of authorize, capture, void, refund")]
                    )
                operate = self._stream_ops[kind]
                # This task is the request's own and no caller cancels it: no shield needed.
                body = await operate(m, getattr(req, kind), None, Timing(cancellable=False))
                outbox.put(_frame(rid, _STREAM_FIELDS[kind], body, outer))
            except errors.SwitchError as exc:
                code = exc.code.name
                status = errors.to_status(exc).SerializeToString()
                outbox.put(_frame(rid, _STREAM_ERROR_FIELD, status, outer))
            except Exception:
                code = "INTERNAL"
                log.exception("unexpected failure", extra={"rpc": "StreamPayments"})
                failure = errors.to_status(errors.SwitchError("internal error in the switch"))
                outbox.put(_frame(rid, _STREAM_ERROR_FIELD, failure.SerializeToString(), outer))
            finally:
                in_flight.discard(rid)  # answered: the id may be used again
                self._idle.end()
                self._metrics.stream_request_done(kind or "none", code, time.perf_counter() - start)

        async def read() -> None:
            try:
                async for requests in incoming:
                    for req in requests:
                        rid = req.id
                        if rid in in_flight:
                            outbox.put(_frame(rid, _STREAM_ERROR_FIELD, _ID_IN_FLIGHT, outer))
                            self._metrics.stream_request_done(
                                req.WhichOneof("request") or "none", "INVALID_ARGUMENT", 0.0
                            )
                            continue
                        in_flight.add(rid)
                        task = loop.create_task(one(req, rid))
                        running.add(task)
                        task.add_done_callback(running.discard)
            except errors.SwitchError as exc:
                refused.append(exc)  # a malformed message ends the stream once the rest is done
            except Exception:
                log.exception("unexpected failure reading a stream")
                refused.append(errors.SwitchError("internal error in the switch"))
            finally:
                if running:
                    await asyncio.wait(list(running))
                outbox.close()

        reader = asyncio.create_task(read())
        try:
            # Every answer ready now goes out: in one message when batched.
            while group := await outbox.take(MAX_STREAM_BATCH):
                if batched:
                    yield b"".join(group)
                else:
                    for answer in group:
                        yield answer
        finally:
            reader.cancel()
            # Operations already claimed finish and are recorded even if the caller left.
            await asyncio.gather(reader, return_exceptions=True)
        if refused:
            await context.abort_with_status(rpc_status.to_status(errors.to_status(refused[0])))

    async def GetPayment(
        self, data: bytes, context: grpc.aio.ServicerContext
    ) -> gw.GetPaymentResponse:
        async def body(m: MerchantConfig, timing: Timing) -> gw.GetPaymentResponse:
            request = _parse(gw.GetPaymentRequest, data)
            validation.payment_id(request.payment_id)
            return gw.GetPaymentResponse(
                payment=payment_proto(await self._get(m, request.payment_id))
            )

        return await self._run("GetPayment", context, body)

    async def _get(self, m: MerchantConfig, payment_id: str) -> Payment:
        p = await self._store.get(m.id, payment_id)
        if p is None:
            raise errors.PaymentNotFound(f"no payment {payment_id}")
        return p

    async def WatchPayment(
        self, data: bytes, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gw.WatchPaymentResponse]:
        try:
            m = self._merchant(context)
            request = _parse(gw.WatchPaymentRequest, data)
            validation.payment_id(request.payment_id)
            with self._hub.subscribe(request.payment_id) as changed:
                p = await self._get(m, request.payment_id)
                yield gw.WatchPaymentResponse(payment=payment_proto(p))
                last = p.version
                while p.status is STATUS_PENDING or p.busy:
                    # A timeout is a safety net: look again even without a signal.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.get(), _WATCH_POLL_S)
                    p = await self._get(m, request.payment_id)
                    if p.version != last:
                        last = p.version
                        yield gw.WatchPaymentResponse(payment=payment_proto(p))
        except errors.SwitchError as exc:
            self._metrics.count_request("WatchPayment", exc.code.name)
            await context.abort_with_status(rpc_status.to_status(errors.to_status(exc)))
            return
        self._metrics.count_request("WatchPayment", "OK")


def _canonical(request: Any) -> bytes:
    """The request as fingerprinted for idempotency: deterministic bytes, the key left out.

    Fields this switch does not know (a newer client's) are dropped from the request first, at
    every depth: the switch ignores them, so a retry that carries one, or carries it only once,
    is the same request; nor do they travel on to a channel. The key is blanked on the request
    itself for the serialization and put back (nothing runs in between: no await), where a copy
    without it would copy the whole request first."""
    request.DiscardUnknownFields()
    key = request.idempotency_key
    request.idempotency_key = ""
    try:
        return bytes(request.SerializeToString(deterministic=True))
    finally:
        request.idempotency_key = key


def _canonical_authorize(request: gw.AuthorizeRequest) -> bytes:
    """`_canonical`, with the card's CVC left out as well.

    The fingerprint stays in Redis as long as the key does, and a CVC may not outlive the
    authorization in any form, a keyed hash included (PCI DSS 3.3.1): a CVC has so few values
    that whoever held the fingerprint key could find it by trying them all. A retry that differs
    from the first request only in its CVC is therefore the same request."""
    card = request.payment_method.card  # an empty default when the method is a wallet
    cvc = card.cvc
    if not cvc:
        return _canonical(request)
    card.cvc = ""
    try:
        return _canonical(request)
    finally:
        card.cvc = cvc


# Field numbers of StreamPaymentsResponse's `response` oneof.
_STREAM_FIELDS = {"authorize": 2, "capture": 3, "void": 4, "refund": 5}
_STREAM_ERROR_FIELD = 6
# The answer to a request whose id is already in flight on its stream: it is not run.
_ID_IN_FLIGHT = errors.to_status(
    errors.InvalidRequest(
        [("id", "is already in flight on this stream: wait for its answer before using it again")]
    )
).SerializeToString()
# Requests in one StreamPaymentBatches message, and answers grouped into one, at most.
MAX_STREAM_BATCH = 1000


# Tags of StreamPaymentsResponse's fields, and of a batch response's field 1.
_TAGS = {
    number: wire.varint(number << 3 | 2)
    for number in (1, *_STREAM_FIELDS.values(), _STREAM_ERROR_FIELD)
}


def _frame(request_id: int, field: int, payload: bytes, outer: bool) -> bytes:
    """A serialized StreamPaymentsResponse around an already serialized answer; with `outer`,
    as field 1 of a StreamPaymentBatchesResponse, ready to be joined with the others.

    Protobuf's wire format makes a message field its tag, its length and its bytes, so the
    stored answer is wrapped as it is rather than parsed into a message and serialized again.
    Written out here, not with wire.field: this runs for every answer of a stream.
    """
    n = len(payload)
    body = (
        (b"\x08" + wire.varint(request_id) if request_id else b"")
        + _TAGS[field]
        + (wire.ONE_BYTE[n] if n < 0x80 else wire.varint(n))
        + payload
    )
    if not outer:
        return body
    n = len(body)
    return _TAGS[1] + (wire.ONE_BYTE[n] if n < 0x80 else wire.varint(n)) + body


class _Outbox:
    """The answers of a payments stream waiting to be written: a deque and one waiter. (An
    asyncio.Queue does the same through several Python calls per answer, on both sides.)"""

    __slots__ = ("_closed", "_items", "_loop", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._items: collections.deque[bytes] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._loop = loop

    def put(self, answer: bytes) -> None:
        self._items.append(answer)
        self._wake()

    def close(self) -> None:
        """No more answers: `take` returns what is left, then nothing."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def take(self, most: int) -> list[bytes]:
        """Up to `most` answers, waiting for the first; empty once closed and drained."""
        items = self._items
        while not items:
            if self._closed:
                return []
            self._waiter = self._loop.create_future()
            await self._waiter
        if len(items) <= most:
            group = list(items)
            items.clear()
            return group
        return [items.popleft() for _ in range(most)]


def _serialize(message: Any) -> bytes:
    # State-changing RPCs answer with bytes already serialized (and stored for idempotent
    # replays), so they go out as they are instead of being parsed and serialized again.
    return message if isinstance(message, bytes) else bytes(message.SerializeToString())


def register(servicer: GatewayServicer, server: grpc.aio.Server) -> None:
    """Add the Gateway to a server, as the generated `add_..._to_server` does, but with no
    request deserializer (the servicer parses the bytes itself: validation.parse) and a response
    serializer that passes pre-serialized answers through."""
    unary = grpc.unary_unary_rpc_method_handler
    handlers = {
        "Authorize": unary(servicer.Authorize, None, _serialize),
        "Capture": unary(servicer.Capture, None, _serialize),
        "Void": unary(servicer.Void, None, _serialize),
        "Refund": unary(servicer.Refund, None, _serialize),
        "GetPayment": unary(servicer.GetPayment, None, _serialize),
        "WatchPayment": grpc.unary_stream_rpc_method_handler(
            servicer.WatchPayment, None, _serialize
        ),
        "StreamPayments": grpc.stream_stream_rpc_method_handler(
            servicer.StreamPayments, None, _serialize
        ),
        "StreamPaymentBatches": grpc.stream_stream_rpc_method_handler(
            servicer.StreamPaymentBatches, None, _serialize
        ),
    }
    name = gw.DESCRIPTOR.services_by_name["GatewayService"].full_name
    # A generic handler only, where the generated code also registers each method: grpc.aio's
    # accept loop waits (asyncio.wait) on one pending future per registered method, and sets
    # up and takes down that wait for every call it accepts. Eight methods more cost about 2%
    # of a unary payment's instructions; a generic lookup by name is a dict lookup.
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
