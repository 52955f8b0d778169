"""Helpers for the Alipay channel's tests: fresh keys, a simulator process, adapters, requests."""

from __future__ import annotations

import asyncio
import json
import pathlib
import secrets
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.alipay.adapter import AlipayAdapter, AlipaySettings
from adapters.alipay.simulator import generate_keys
from adapters.sdk.types import (
    AuthorizeRequest,
    ChannelEvent,
    InquireRequest,
    Money,
    OperationType,
    PaymentMethodType,
    RefundRequest,
    VoidRequest,
    Wallet,
)
from adapters.walletkit import keys
from adapters.walletkit.httpclient import HttpClient
from adapters.walletkit.wallet import Tuning
from tests.support import free_port, spawn, stop_process, wait_for_port

APP_ID = "2021000000000001"
MERCHANT = "m-alipay"
CONFIRM_AFTER_S = 0.6
HANG_S = 4.0


def code(scenario: str) -> str:
    """A test payment code whose last four digits choose the simulator's scenario."""
    return "28" + secrets.choice("0123456789") * 12 + scenario


def ref(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(6)}"


def cny(fen: int) -> Money:
    return Money(fen, "CNY")


@dataclass(frozen=True)
class KeySet:
    """A matching set of fresh keys in a tmp dir, as `--generate-keys` writes them."""

    dir: pathlib.Path

    @classmethod
    def create(cls, directory: pathlib.Path) -> KeySet:
        generate_keys(directory)
        return cls(directory)

    def path(self, name: str) -> str:
        return str(self.dir / f"{name}.pem")


@dataclass
class SimulatorProcess:
    """`python -m adapters.alipay.simulator` on a free port."""

    keys: KeySet
    extra: Sequence[str] = ()
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.port}/gateway.do"

    def start(self) -> None:
        self.proc = spawn(
            [
                "-m", "adapters.alipay.simulator",
                "--listen", f"127.0.0.1:{self.port}",
                "--app-id", APP_ID,
                "--app-public-key", self.keys.path("app_public"),
                "--platform-private-key", self.keys.path("platform_private"),
                "--confirm-after-s", str(CONFIRM_AFTER_S),
                "--hang-s", str(HANG_S),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    async def stats(self) -> dict[str, Any]:
        return await sim_json(self.port, "GET", "/_sim/stats")


async def sim_json(port: int, method: str, target: str) -> dict[str, Any]:
    """Call a simulator's control endpoint on 127.0.0.1:`port`; its JSON answer."""
    http = HttpClient(f"http://127.0.0.1:{port}")
    try:
        response = await http.request(method, target)
    finally:
        await http.aclose()
    value: dict[str, Any] = json.loads(response.body)
    return value


class Events:
    """The EventSink a test hands to the adapter: keeps what was published."""

    def __init__(self) -> None:
        self.items: list[ChannelEvent] = []
        self._changed = asyncio.Event()

    def publish(self, event: ChannelEvent) -> None:
        self.items.append(event)
        self._changed.set()

    def about(self, reference: str) -> list[ChannelEvent]:
        return [e for e in self.items if e.reference == reference]

    async def settled(self, reference: str, deadline_s: float = 10.0) -> ChannelEvent:
        """The one event published about `reference`, waiting for it up to `deadline_s`."""
        async with asyncio.timeout(deadline_s):
            while not self.about(reference):
                self._changed.clear()
                await self._changed.wait()
        (event,) = self.about(reference)
        return event


def settings(sim: SimulatorProcess, **overrides: Any) -> AlipaySettings:
    tuning = Tuning(
        timeout_s=overrides.pop("timeout_s", 2.0),
        poll_interval_s=overrides.pop("poll_interval_s", 0.2),
        max_connections=overrides.pop("max_connections", 8),
    )
    values: dict[str, Any] = {
        "gateway_url": sim.gateway,
        "app_id": APP_ID,
        "app_private_key": keys.load_private_key(sim.keys.path("app_private")),
        "platform_public_key": keys.load_public_key(sim.keys.path("platform_public")),
        "tuning": tuning,
    }
    values.update(overrides)
    return AlipaySettings(**values)


def authorize(reference: str, auth_code: str, fen: int = 8888, **kw: Any) -> AuthorizeRequest:
    return AuthorizeRequest(
        reference=reference,
        merchant_id=MERCHANT,
        amount=cny(fen),
        payment_method=Wallet(kw.pop("kind", PaymentMethodType.ALIPAY), auth_code),
        capture=kw.pop("capture", True),
        description="payswitch test",
        **kw,
    )


def refund(reference: str, original: str, fen: int, captured: int = 8888) -> RefundRequest:
    return RefundRequest(
        reference=reference,
        merchant_id=MERCHANT,
        original_reference=original,
        upstream_reference="",
        amount=cny(fen),
        captured_amount=cny(captured),
    )


def void(reference: str, original: str, fen: int = 8888) -> VoidRequest:
    return VoidRequest(reference, MERCHANT, original, "", cny(fen))


def inquire(reference: str, operation: OperationType, original: str = "") -> InquireRequest:
    return InquireRequest(reference, MERCHANT, operation, original, None)


async def started(adapter: AlipayAdapter) -> tuple[AlipayAdapter, Events]:
    events = Events()
    await adapter.start(events)
    return adapter, events
