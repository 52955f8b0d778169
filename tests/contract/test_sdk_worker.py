"""The SDK worker on a real socket: validation, capability checks, error mapping, events, health."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from adapters.sdk import convert
from adapters.sdk.adapter import EventSink
from adapters.sdk.errors import (
    InvalidRequestError,
    InvalidResponseError,
    NotSupportedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from adapters.sdk.types import (
    AuthorizeRequest,
    Capabilities,
    CaptureRequest,
    Card,
    ChannelEvent,
    InquireRequest,
    Money,
    OperationResult,
    OperationStatus,
    OperationType,
    PaymentMethodType,
    RefundRequest,
    VoidRequest,
    Wallet,
)
from adapters.sdk.worker import SERVICE_NAME, Worker
from payswitch.channel.v1 import channel_service_pb2 as ch
from payswitch.channel.v1 import channel_service_pb2_grpc as ch_grpc

CARD = Card("4242424242424242", 12, 2031, "123")


@dataclass
class ScriptedAdapter:
    """Answers each reference as scripted: a result to return or an exception to raise."""

    caps: Capabilities = field(
        default_factory=lambda: Capabilities(
            name="scripted",
            payment_methods=frozenset({PaymentMethodType.CARD}),
            currencies=frozenset({"USD"}),
            min_amount_minor=10,
            max_amount_minor=1_000_000,
        )
    )
    script: dict[str, OperationResult | Exception] = field(default_factory=dict)
    received: list[object] = field(default_factory=list)
    gate: asyncio.Event | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    sink: EventSink | None = None
    stopped: bool = False

    def capabilities(self) -> Capabilities:
        return self.caps

    async def start(self, events: EventSink) -> None:
        self.sink = events

    async def stop(self) -> None:
        self.stopped = True

    async def _answer(self, request: object, reference: str) -> OperationResult:
        self.received.append(request)
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        outcome = self.script.get(reference, OperationResult.approved(raw_code="00"))
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def authorize(self, request: AuthorizeRequest) -> OperationResult:
        return await self._answer(request, request.reference)

    async def capture(self, request: CaptureRequest) -> OperationResult:
        return await self._answer(request, request.reference)

    async def void(self, request: VoidRequest) -> OperationResult:
        return await self._answer(request, request.reference)

    async def refund(self, request: RefundRequest) -> OperationResult:
        return await self._answer(request, request.reference)

    async def inquire(self, request: InquireRequest) -> OperationResult:
        return await self._answer(request, request.reference)


@dataclass
class Served:
    adapter: ScriptedAdapter
    worker: Worker
    channel: grpc.aio.Channel
    stub: ch_grpc.ChannelServiceAsyncStub


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    adapter = ScriptedAdapter()
    worker = Worker(adapter, listen="127.0.0.1:0", grace_s=2.0)
    port = await worker.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield Served(adapter, worker, channel, ch_grpc.ChannelServiceStub(channel))  # type: ignore[arg-type]
    await worker.stop()


def authorize(reference: str = "r1", **changes: object) -> ch.AuthorizeRequest:
    values: dict[str, object] = {
        "reference": reference,
        "merchant_id": "m1",
        "amount": Money(1000, "USD"),
        "payment_method": CARD,
        "capture": True,
    }
    values.update(changes)
    return convert.authorize_request_to_proto(AuthorizeRequest(**values))  # type: ignore[arg-type]


def details(exc: grpc.aio.AioRpcError) -> tuple[error_details_pb2.ErrorInfo, list[str]]:
    """The ErrorInfo and the BadRequest field names of a failed call."""
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None
    info, fields = None, []
    for any_ in status.details:
        if any_.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_.Unpack(info)
        if any_.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_.Unpack(bad)
            fields = [v.field for v in bad.field_violations]
    assert info is not None and info.domain == "payswitch"
    return info, fields


async def test_approval_passes_decoded_request_to_adapter(served: Served) -> None:
    reply = await served.stub.Authorize(authorize("r1"))
    assert reply.result.status == ch.OPERATION_STATUS_APPROVED
    assert reply.result.raw_code == "00"
    (received,) = served.adapter.received
    assert isinstance(received, AuthorizeRequest)
    assert received.payment_method == CARD and received.amount == Money(1000, "USD")


async def test_bad_input_is_refused_before_the_adapter(served: Served) -> None:
    bad = authorize("not valid!", amount=Money(0, "usd"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await served.stub.Authorize(bad)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    error_info, fields = details(info.value)
    assert error_info.reason == "ERROR_REASON_INVALID_REQUEST"
    assert set(fields) == {"reference", "amount.amount_minor", "amount.currency"}
    assert served.adapter.received == []


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        (
            InvalidRequestError([("payment_method.card.number", "unknown BIN")]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "ERROR_REASON_INVALID_REQUEST",
        ),
        (
            NotSupportedError("no partial capture"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "ERROR_REASON_OPERATION_NOT_SUPPORTED",
        ),
        (
            UpstreamUnavailableError("connection refused"),
            grpc.StatusCode.UNAVAILABLE,
            "ERROR_REASON_UPSTREAM_UNAVAILABLE",
        ),
    ],
)
async def test_adapter_errors_become_rich_statuses(
    served: Served, error: Exception, code: grpc.StatusCode, reason: str
) -> None:
    served.adapter.script["r1"] = error
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await served.stub.Authorize(authorize("r1"))
    assert info.value.code() == code
    error_info, fields = details(info.value)
    assert error_info.reason == reason
    assert error_info.metadata["channel"] == "scripted"
    if isinstance(error, InvalidRequestError):
        assert fields == ["payment_method.card.number"]


@pytest.mark.parametrize(
    "error",
    [
        UpstreamTimeoutError("no answer in 5 s"),
        InvalidResponseError("bad signature"),
        RuntimeError("bug"),
    ],
)
async def test_unknown_outcomes_are_pending_answers(served: Served, error: Exception) -> None:
    served.adapter.script["r1"] = error
    reply = await served.stub.Authorize(authorize("r1"))
    assert reply.result.status == ch.OPERATION_STATUS_PENDING
    assert reply.result.message


async def test_not_found_outside_inquire_becomes_pending(served: Served) -> None:
    served.adapter.script["r1"] = OperationResult(status=OperationStatus.NOT_FOUND)
    reply = await served.stub.Authorize(authorize("r1"))
    assert reply.result.status == ch.OPERATION_STATUS_PENDING


async def test_inquire_failure_is_internal(served: Served) -> None:
    served.adapter.script["q1"] = RuntimeError("bug")
    request = ch.InquireRequest(reference="q1", merchant_id="m1", operation=1)  # type: ignore[arg-type]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await served.stub.Inquire(request)
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert details(info.value)[0].reason == "ERROR_REASON_INTERNAL"


@pytest.mark.parametrize(
    "request_",
    [
        authorize(amount=Money(1000, "EUR")),
        authorize(amount=Money(9, "USD")),
        authorize(amount=Money(1_000_001, "USD")),
        authorize(payment_method=Wallet(PaymentMethodType.ALIPAY, "2865" + "0" * 14)),
    ],
    ids=["currency", "below-min", "above-max", "method"],
)
async def test_capabilities_are_enforced(served: Served, request_: ch.AuthorizeRequest) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await served.stub.Authorize(request_)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(info.value)[0].reason == "ERROR_REASON_OPERATION_NOT_SUPPORTED"
    assert served.adapter.received == []


async def test_unsupported_follow_ups_are_refused(served: Served) -> None:
    served.adapter.caps = Capabilities(
        name="scripted",
        payment_methods=frozenset({PaymentMethodType.CARD}),
        currencies=frozenset({"USD"}),
        supports_partial_capture=False,
        supports_void=False,
        supports_partial_refund=False,
    )
    await served.stub.Describe(ch.DescribeRequest())  # the worker checks against the latest
    usd = Money(100, "USD")
    calls = [
        served.stub.Capture(
            convert.capture_request_to_proto(
                CaptureRequest("c", "m", "a", "", usd, Money(200, "USD"))
            )
        ),
        served.stub.Void(convert.void_request_to_proto(VoidRequest("v", "m", "a", "", usd))),
        served.stub.Refund(
            convert.refund_request_to_proto(
                RefundRequest("f", "m", "a", "", usd, Money(101, "USD"))
            )
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    full = CaptureRequest("c", "m", "a", "", usd, usd)
    reply = await served.stub.Capture(convert.capture_request_to_proto(full))
    assert reply.result.status == ch.OPERATION_STATUS_APPROVED


async def test_describe_serves_capabilities(served: Served) -> None:
    reply = await served.stub.Describe(ch.DescribeRequest())
    assert convert.capabilities_from_proto(reply) == served.adapter.caps


async def test_health_and_reflection(served: Served) -> None:
    health = health_pb2_grpc.HealthStub(served.channel)
    for service in ("", SERVICE_NAME):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(served.channel)
    ask = reflection_pb2.ServerReflectionRequest(list_services="")
    async for answer in stub.ServerReflectionInfo(iter([ask])):
        names = {s.name for s in answer.list_services_response.service}
    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names


async def test_watch_events_gets_backlog_then_live_events(served: Served) -> None:
    sink = served.adapter.sink
    assert sink is not None
    sink.publish(ChannelEvent("early", OperationType.AUTHORIZE, OperationResult.approved()))
    stream = served.stub.WatchEvents(ch.WatchEventsRequest())
    first = await stream.read()
    assert first.reference == "early"
    sink.publish(ChannelEvent("late", OperationType.REFUND, OperationResult.pending()))
    second = await stream.read()
    assert (second.reference, second.operation) == ("late", OperationType.REFUND.value)
    assert second.result.status == ch.OPERATION_STATUS_PENDING
    stream.cancel()


async def test_stop_lets_calls_in_flight_finish_and_ends_streams(served: Served) -> None:
    served.adapter.gate = asyncio.Event()
    stream = served.stub.WatchEvents(ch.WatchEventsRequest())
    watch = health_pb2_grpc.HealthStub(served.channel).Watch(health_pb2.HealthCheckRequest())
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
    in_flight = asyncio.ensure_future(served.stub.Authorize(authorize("slow")))
    await served.adapter.arrived.wait()
    stopping = asyncio.ensure_future(served.worker.stop())
    # Health turns NOT_SERVING while the call is still in flight.
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()
    with pytest.raises(grpc.aio.AioRpcError):  # no new calls once stopping
        await served.stub.Describe(ch.DescribeRequest(), timeout=1)
    assert not in_flight.done()
    served.adapter.gate.set()
    assert (await in_flight).result.status == ch.OPERATION_STATUS_APPROVED
    assert await stream.read() == grpc.aio.EOF
    await stopping
    assert served.adapter.stopped
