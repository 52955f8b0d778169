"""A real switch (real Redis) in front of the card worker and simulator, and a typed caller."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import grpc

from adapters.card.host import HostRecord, load_state
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from payswitch.gateway.v1 import gateway_service_pb2_grpc as gw_grpc
from payswitch.gateway.v1 import payment_pb2
from tests.integration.alipay.switchkit import start_switch
from tests.integration.card.cardprocs import CardStack, make_stack
from tests.integration.switch.conftest import API_KEY, Switch
from tests.integration.switch.helpers import key, money

Payment = payment_pb2.Payment


@dataclass
class Stack:
    """The card stack (simulator and worker processes) with a switch in front of it."""

    card: CardStack
    switch: Switch

    def host(self) -> dict[str, HostRecord]:
        """What the acquirer simulator remembers, by message key."""
        return load_state(self.card.simulator.state)

    def purchase(self, rrn: str) -> HostRecord:
        [record] = self.card.simulator.purchases(rrn)
        return record

    def logs(self) -> str:
        return self.switch.log_text() + self.card.worker.log_text()

    def resolved_by(self, payment_id: str) -> list[str]:
        """How the switch learned each outcome of a payment it had answered PENDING."""
        lines = (json.loads(line) for line in self.switch.log_text().splitlines() if line.strip())
        return [
            str(entry["source"])
            for entry in lines
            if entry.get("msg") == "resolved an unknown outcome" and entry.get("pid") == payment_id
        ]


@contextlib.contextmanager
def running(
    tmp_path: pathlib.Path, redis_url: str, *worker_flags: str, reconcile_ms: int
) -> Iterator[Stack]:
    """Simulator, card worker (short timeouts, plus `worker_flags`) and a switch, all started.

    The switch's reconciler inquires about unknown outcomes every `reconcile_ms`; at 60 000 it
    looks once at start and then not within a test, so only the card adapter's event settles.
    """
    card = make_stack(tmp_path)
    card.worker.extra = list(worker_flags)
    card.simulator.start()
    try:
        card.worker.start()
        switch = start_switch(
            tmp_path, redis_url, "card", card.worker.port, reconcile_ms=reconcile_ms
        )
        try:
            yield Stack(card, switch)
        finally:
            switch.stop()
    finally:
        card.worker.stop()
        card.simulator.stop()


class Gateway:
    """The Gateway as a merchant calls it: each call with the API key, answering the payment."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = gw_grpc.GatewayServiceStub(channel)
        self._metadata = (("authorization", f"Bearer {API_KEY}"),)

    async def authorize(self, request: gw.AuthorizeRequest) -> Payment:
        reply: gw.AuthorizeResponse = await self._stub.Authorize(
            request, metadata=self._metadata, timeout=10
        )
        return reply.payment

    async def capture(self, payment_id: str, amount: int) -> Payment:
        request = gw.CaptureRequest(
            idempotency_key=key(), payment_id=payment_id, amount=money(amount)
        )
        reply: gw.CaptureResponse = await self._stub.Capture(
            request, metadata=self._metadata, timeout=10
        )
        return reply.payment

    async def refund(self, payment_id: str, amount: int | None = None) -> gw.RefundResponse:
        """Refund `amount`, or all that is left when it is None."""
        request = gw.RefundRequest(idempotency_key=key(), payment_id=payment_id)
        if amount is not None:
            request.amount.CopyFrom(money(amount))
        reply: gw.RefundResponse = await self._stub.Refund(
            request, metadata=self._metadata, timeout=10
        )
        return reply

    async def void(self, payment_id: str) -> Payment:
        request = gw.VoidRequest(idempotency_key=key(), payment_id=payment_id)
        reply: gw.VoidResponse = await self._stub.Void(request, metadata=self._metadata, timeout=10)
        return reply.payment

    async def get(self, payment_id: str) -> Payment:
        request = gw.GetPaymentRequest(payment_id=payment_id)
        reply: gw.GetPaymentResponse = await self._stub.GetPayment(
            request, metadata=self._metadata, timeout=10
        )
        return reply.payment

    async def watch(self, payment_id: str, timeout_s: float = 15.0) -> list[Payment]:
        """The states WatchPayment streams until the payment is no longer pending."""
        seen: list[Payment] = []
        request = gw.WatchPaymentRequest(payment_id=payment_id)
        async with asyncio.timeout(timeout_s):
            stream = self._stub.WatchPayment(request, metadata=self._metadata, timeout=timeout_s)
            async for update in stream:
                seen.append(update.payment)
        return seen


@contextlib.asynccontextmanager
async def gateway(switch: Switch) -> AsyncIterator[Gateway]:
    async with grpc.aio.insecure_channel(switch.address) as channel:
        yield Gateway(channel)
