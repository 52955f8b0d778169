"""A Channel client for the conformance suite: typed calls, refusals decoded from rich status."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from adapters.sdk import convert
from adapters.sdk.types import (
    AuthorizeRequest,
    Capabilities,
    CaptureRequest,
    ChannelEvent,
    InquireRequest,
    OperationResult,
    OperationType,
    RefundRequest,
    VoidRequest,
)
from payswitch.channel.v1 import channel_service_pb2 as ch
from payswitch.channel.v1 import channel_service_pb2_grpc as ch_grpc


class ConformanceError(AssertionError):
    """A channel broke the Channel contract; the message says how."""


def expect(condition: bool, message: str) -> None:
    """Fail the check with `message` unless `condition` holds."""
    if not condition:
        raise ConformanceError(message)


def new_reference(tag: str) -> str:
    """A fresh operation reference no earlier run has used."""
    return f"cf-{tag}-{secrets.token_hex(8)}"


@dataclass
class Refused(Exception):
    """A call answered with a non-OK gRPC status, its rich details decoded."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    fields: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.code.name} {self.reason or '(no ErrorInfo)'}: {self.message}"

    @classmethod
    def from_error(cls, error: grpc.aio.AioRpcError) -> Refused:
        refused = cls(code=error.code(), message=error.details() or "")
        status = rpc_status.from_call(error)
        for detail in [] if status is None else status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                refused.reason, refused.domain = info.reason, info.domain
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                refused.fields = [v.field for v in bad.field_violations]
        return refused


class ChannelClient:
    """One connection to a worker; use it as `async with ChannelClient(target) as client`."""

    def __init__(self, target: str, *, timeout_s: float = 10.0) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._channel = grpc.aio.insecure_channel(target)
        self.stub: Any = ch_grpc.ChannelServiceStub(self._channel)

    async def __aenter__(self) -> ChannelClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._channel.close()

    async def call(self, method: str, request: Message, *, timeout_s: float | None = None) -> Any:
        """Send a raw proto to the named RPC; raises Refused on a non-OK status."""
        rpc: Callable[..., Awaitable[Any]] = getattr(self.stub, method)
        try:
            return await rpc(request, timeout=timeout_s or self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise Refused.from_error(exc) from exc

    async def _result(
        self, method: str, request: Message, timeout_s: float | None
    ) -> OperationResult:
        reply = await self.call(method, request, timeout_s=timeout_s)
        try:
            return convert.result_from_proto(reply.result)
        except ValueError as exc:
            raise ConformanceError(f"{method} answered without a valid result: {exc}") from exc

    async def authorize(
        self, request: AuthorizeRequest, *, timeout_s: float | None = None
    ) -> OperationResult:
        pb = convert.authorize_request_to_proto(request)
        return await self._result("Authorize", pb, timeout_s)

    async def capture(self, request: CaptureRequest) -> OperationResult:
        return await self._result("Capture", convert.capture_request_to_proto(request), None)

    async def void(self, request: VoidRequest) -> OperationResult:
        return await self._result("Void", convert.void_request_to_proto(request), None)

    async def refund(self, request: RefundRequest) -> OperationResult:
        return await self._result("Refund", convert.refund_request_to_proto(request), None)

    async def inquire(
        self, reference: str, operation: OperationType, *, merchant_id: str, original: str = ""
    ) -> OperationResult:
        request = InquireRequest(reference, merchant_id, operation, original, None)
        return await self._result("Inquire", convert.inquire_request_to_proto(request), None)

    async def describe(self) -> Capabilities:
        return convert.capabilities_from_proto(await self.call("Describe", ch.DescribeRequest()))

    async def health(self, service: str = "") -> int:
        """The serving status the worker's grpc.health.v1 service reports for `service`."""
        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=self.timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            raise Refused.from_error(exc) from exc
        return int(reply.status)

    async def watch(self, ready: asyncio.Event | None = None) -> AsyncIterator[ChannelEvent]:
        """Events from WatchEvents until the stream ends; `ready` is set once it is open."""
        stream = self.stub.WatchEvents(ch.WatchEventsRequest())
        try:
            await stream.wait_for_connection()
            if ready is not None:
                ready.set()
            async for event in stream:
                yield convert.event_from_proto(event)
        finally:
            stream.cancel()
