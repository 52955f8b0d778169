"""Helpers for the Alipay channel's tests: fresh keys, a simulator process, adapters, requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import secrets
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypeVar

from adapters.alipay.adapter import AlipaySettings
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
from adapters.walletkit.wallet import Tuning, WalletAdapter
from tests.support import free_port, spawn, stop_process, wait_for_port

APP_ID = "2021000000000001"
MERCHANT = "m-alipay"
CONFIRM_AFTER_S = 0.6
HANG_S = 4.0
# Scenario 3006: how long a refund's query does not show a refund the platform made.
REFUND_LAG_S = 3.0


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
    GENERATE: ClassVar[Callable[[pathlib.Path], None]] = staticmethod(generate_keys)

    @classmethod
    def create(cls, directory: pathlib.Path) -> Self:
        cls.GENERATE(directory)
        return cls(directory)

    def path(self, name: str) -> str:
        """A key file's path: `app_private` is `app_private.pem`; a name with a suffix is kept."""
        return str(self.dir / (name if "." in name else f"{name}.pem"))


@dataclass
class SimulatorProcess:
    """`python -m adapters.alipay.simulator` on a free port (subclassed for WeChat)."""

    keys: KeySet
    extra: Sequence[str] = ()
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    MODULE: ClassVar[str] = "adapters.alipay.simulator"

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.port}/gateway.do"

    def flags(self) -> list[str]:
        return [
            "--app-id", APP_ID,
            "--app-public-key", self.keys.path("app_public"),
            "--platform-private-key", self.keys.path("platform_private"),
            "--refund-lag-s", str(REFUND_LAG_S),
        ]  # fmt: skip

    def start(self) -> None:
        self.proc = spawn(
            [
                "-m", self.MODULE,
                "--listen", f"127.0.0.1:{self.port}",
                "--confirm-after-s", str(CONFIRM_AFTER_S),
                "--hang-s", str(HANG_S),
                *self.flags(),
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


A = TypeVar("A", bound=WalletAdapter)


@contextlib.asynccontextmanager
async def adapter_pool(
    build: Callable[..., A],
) -> AsyncIterator[Callable[..., Awaitable[tuple[A, Events]]]]:
    """A factory of started adapters (each with its own Events), all stopped at the end."""
    adapters: list[A] = []

    async def make(**overrides: Any) -> tuple[A, Events]:
        adapter = build(**overrides)
        adapters.append(adapter)
        events = Events()
        await adapter.start(events)
        return adapter, events

    try:
        yield make
    finally:
        for adapter in adapters:
            await adapter.stop()
