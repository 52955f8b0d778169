"""Risk fixtures: the analytics fixtures (real Redis, sandbox workers, switch processes, and the
analytics process serving AdminService), and helpers to pay and to wait for a payment."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from payswitch.gateway.v1 import gateway_service_pb2 as gw
from payswitch.gateway.v1 import payment_pb2
from tests.integration.analytics.conftest import *  # noqa: F403 - the analytics' fixtures
from tests.integration.switch.conftest import Client
from tests.integration.switch.helpers import APPROVE, authorize

T = TypeVar("T")


async def pay(
    client: Client, amount: int = 1000, number: str = APPROVE, currency: str = "USD"
) -> payment_pb2.Payment:
    reply = await client.Authorize(authorize(amount, currency, number))  # type: ignore[misc]
    assert isinstance(reply, gw.AuthorizeResponse)
    return reply.payment


async def get(client: Client, payment_id: str) -> payment_pb2.Payment:
    reply = await client.GetPayment(gw.GetPaymentRequest(payment_id=payment_id))  # type: ignore[misc]
    assert isinstance(reply, gw.GetPaymentResponse)
    return reply.payment


async def eventually(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], timeout_s: float = 15.0
) -> T:
    """Probe until `ok` holds (a switch picks up admin changes within about a second)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if ok(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


def velocity_rule(name: str, *, window_s: int, max_count: int, scope: str = "card") -> str:
    return (
        f'\n[[risk.velocity]]\nname = "{name}"\nscope = "{scope}"\n'
        f"window_s = {window_s}\nmax_count = {max_count}\n"
    )


def amount_rule(name: str, *, currency: str, max_amount: int, action: str = "reject") -> str:
    return (
        f'\n[[risk.amount_limits]]\nname = "{name}"\ncurrency = "{currency}"\n'
        f'max_amount_minor = {max_amount}\naction = "{action}"\n'
    )
