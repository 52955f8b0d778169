"""The template channel's flows: authorize (as a sale), refund and inquire; the rest refused."""

from __future__ import annotations

import asyncio
from typing import TextIO

from adapters.sdk import (
    AuthorizeRequest,
    Capabilities,
    CaptureRequest,
    Card,
    EventSink,
    InquireRequest,
    NotSupportedError,
    OperationResult,
    PaymentMethodType,
    RefundRequest,
    VoidRequest,
)
from adapters.template import mapping
from adapters.template.client import UpstreamClient
from adapters.template.simulator import PretendUpstream


class TemplateAdapter:
    """A ChannelAdapter for the pretend upstream. The worker validates input, checks it against
    `capabilities()` and maps errors, so each method only does the channel's own work.

    Repeats of a reference are safe here because the upstream is idempotent by order id. An
    upstream without that (ISO 8583) needs the adapter to record references before sending.
    """

    def __init__(
        self, *, name: str = "template", timeout_s: float = 2.0, upstream_journal: str = ""
    ) -> None:
        self._name = name
        self._timeout_s = timeout_s
        self._client = UpstreamClient(None, timeout_s=timeout_s)
        # Where the pretend upstream notes what it charged, for the conformance suite.
        self._upstream_journal = upstream_journal
        self._journal: TextIO | None = None

    def capabilities(self) -> Capabilities:
        return Capabilities(
            name=self._name,
            payment_methods=frozenset({PaymentMethodType.CARD}),
            currencies=frozenset({"USD", "EUR"}),
            supports_manual_capture=False,
            supports_partial_capture=False,
            supports_void=False,
        )

    async def start(self, events: EventSink) -> None:
        # Connect here (and start background work); a real client gets its address from config.
        if self._upstream_journal:
            self._journal = await asyncio.to_thread(_append_lines, self._upstream_journal)
        upstream = PretendUpstream(self._journal)
        self._client = UpstreamClient(upstream, timeout_s=self._timeout_s)

    async def stop(self) -> None:
        self._client = UpstreamClient(None, timeout_s=self._timeout_s)
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    async def authorize(self, request: AuthorizeRequest) -> OperationResult:
        card = request.payment_method
        if not isinstance(card, Card):  # the worker already refuses what capabilities exclude
            raise NotSupportedError("only cards")
        return mapping.result_from(await self._client.send(mapping.pay_message(request, card)))

    async def capture(self, request: CaptureRequest) -> OperationResult:
        raise NotSupportedError("the template channel only does sales")

    async def void(self, request: VoidRequest) -> OperationResult:
        raise NotSupportedError("the template channel only does sales")

    async def refund(self, request: RefundRequest) -> OperationResult:
        return mapping.result_from(await self._client.send(mapping.refund_message(request)))

    async def inquire(self, request: InquireRequest) -> OperationResult:
        return mapping.result_from(
            await self._client.send(mapping.query_message(request.reference))
        )


def _append_lines(path: str) -> TextIO:
    return open(path, "a", buffering=1, encoding="utf-8")
