"""The ChannelAdapter protocol: the one interface a channel author implements."""

from __future__ import annotations

from typing import Protocol

from adapters.sdk.types import (
    AuthorizeRequest,
    Capabilities,
    CaptureRequest,
    ChannelEvent,
    InquireRequest,
    OperationResult,
    RefundRequest,
    VoidRequest,
)


class EventSink(Protocol):
    """Where an adapter publishes outcomes it learns on its own; the worker streams them."""

    def publish(self, event: ChannelEvent) -> None: ...


class ChannelAdapter(Protocol):
    """A payment channel. The worker calls these methods concurrently from one event loop.

    Contract (checked by the conformance suite):
    - a decline is an `OperationResult` with status DECLINED, never an exception;
    - a repeated call with the same `reference` must not charge twice; answer it with the
      first call's result;
    - an outcome that is not known (timeout, untrustworthy answer) is a PENDING result or an
      `OutcomeUnknownError`, and `inquire` later tells the real outcome;
    - `inquire` answers NOT_FOUND only when the operation certainly never happened;
    - card numbers and CVCs are never logged or stored.
    """

    def capabilities(self) -> Capabilities:
        """What the channel supports; called once at start and on each Describe."""
        ...

    async def start(self, events: EventSink) -> None:
        """Open connections and start background work; `events` takes pushed outcomes."""
        ...

    async def stop(self) -> None:
        """Close connections and stop background work."""
        ...

    async def authorize(self, request: AuthorizeRequest) -> OperationResult: ...

    async def capture(self, request: CaptureRequest) -> OperationResult: ...

    async def void(self, request: VoidRequest) -> OperationResult: ...

    async def refund(self, request: RefundRequest) -> OperationResult: ...

    async def inquire(self, request: InquireRequest) -> OperationResult: ...
