"""Card test helpers: requests, a fake event sink, a gated host, a raw ISO 8583 socket."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.card import framing, mapping, spec
from adapters.card.adapter import CardAdapter
from adapters.card.config import CardConfig
from adapters.card.host import AcquirerHost, Action, HostRecord, load_state
from adapters.card.simulator import Simulator
from adapters.sdk.serving import StreamServer
from adapters.sdk.types import (
    AuthorizeRequest,
    CaptureRequest,
    Card,
    ChannelEvent,
    InquireRequest,
    Money,
    OperationType,
    RefundRequest,
    VoidRequest,
)

SLOW_SECONDS = 0.6
RESPONSE_TIMEOUT = 0.3


def card(pan: str, month: int = 12, year: int = 2031) -> Card:
    return Card(number=pan, expiry_month=month, expiry_year=year, cvc="737")


def auth(
    reference: str, pan: str, amount: int = 1000, currency: str = "USD", *, capture: bool = False
) -> AuthorizeRequest:
    return AuthorizeRequest(reference, "m1", Money(amount, currency), card(pan), capture)


def capture(
    ref: str, original: str, amount: int, authorized: int, cur: str = "USD"
) -> CaptureRequest:
    return CaptureRequest(ref, "m1", original, "", Money(amount, cur), Money(authorized, cur))


def refund(ref: str, original: str, amount: int, captured: int, cur: str = "USD") -> RefundRequest:
    return RefundRequest(ref, "m1", original, "", Money(amount, cur), Money(captured, cur))


def void(ref: str, original: str, amount: int = 1000, cur: str = "USD") -> VoidRequest:
    return VoidRequest(ref, "m1", original, "", Money(amount, cur))


def inquire(ref: str, op: OperationType = OperationType.AUTHORIZE) -> InquireRequest:
    return InquireRequest(ref, "m1", op, "", None)


def host_record(state_file: Path, rrn: str) -> HostRecord:
    """What the host remembers of the authorization or sale with this RRN."""
    found = [r for r in load_state(state_file).values() if r.rrn == rrn and r.de3 == "000000"]
    assert len(found) == 1, f"the host has {len(found)} purchases with RRN {rrn}"
    return found[0]


async def eventually(check: Callable[[], bool | Awaitable[bool]], within: float = 5.0) -> None:
    """Poll `check` until it holds; fail the test after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        outcome = check()
        if outcome if isinstance(outcome, bool) else await outcome:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.01)


@dataclass
class Events:
    """A hand-written EventSink: keeps what the adapter publishes."""

    received: list[ChannelEvent] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def publish(self, event: ChannelEvent) -> None:
        self.received.append(event)
        self._changed.set()

    async def wait_for(self, reference: str, within: float = 5.0) -> ChannelEvent:
        async with asyncio.timeout(within):
            while True:
                for event in self.received:
                    if event.reference == reference:
                        return event
                self._changed.clear()
                await self._changed.wait()


class GatedHost(AcquirerHost):
    """The real host rules, except that messages matching `drop` get no answer while it is set."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.drop: Callable[[spec.Message], bool] | None = None
        self.seen: list[str] = []

    def handle(self, doc: spec.Message, signed_on: bool) -> Action:
        self.seen.append(doc["t"])
        action = super().handle(doc, signed_on)
        if self.drop is not None and self.drop(doc):
            return Action(None)
        return action


@dataclass
class RunningSimulator:
    sim: Simulator
    host: GatedHost
    port: int


def card_config(tmp_path: Path, port: int, **overrides: Any) -> CardConfig:
    config = CardConfig(
        acquirer_host="127.0.0.1",
        acquirer_port=port,
        terminal_id="TERM0001",
        merchant_id="MERCHANT000001",
        saf_file=tmp_path / "card-saf.jsonl",
        connect_timeout=1.0,
        response_timeout=RESPONSE_TIMEOUT,
        frame_timeout=1.0,
        reconnect_base=0.02,
        reconnect_cap=0.2,
        saf_retry_base=0.05,
        saf_retry_cap=0.2,
        saf_max_attempts=50,
    )
    return dataclasses.replace(config, **overrides)


AdapterFactory = Callable[..., Awaitable[tuple[CardAdapter, Events]]]


class IsoSocket:
    """A raw ISO 8583 TCP client for poking at hosts: framed or not, well-formed or not."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> IsoSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, doc: spec.Message) -> None:
        await self.send_raw(framing.frame(spec.encode(doc)))

    async def recv(self, within: float = 2.0) -> spec.Message:
        async with asyncio.timeout(within):
            return spec.decode(await framing.read_frame(self.reader, within))

    async def closed_by_peer(self, within: float = 3.0) -> bool:
        async with asyncio.timeout(within):
            return await self.reader.read(1) == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


Script = Callable[[spec.Message, asyncio.StreamWriter], Awaitable[None]]


def answer(doc: spec.Message, code: str = "00", **fields: str) -> spec.Message:
    reply = {k: v for k, v in doc.items() if k in ("3", "4", "7", "11", "37", "41", "49", "70")}
    return {**reply, "t": spec.response_mti(doc["t"]), "39": code, **fields}


async def write(writer: asyncio.StreamWriter, doc: spec.Message | bytes) -> None:
    data = doc if isinstance(doc, bytes) else framing.frame(spec.encode(doc))
    writer.write(data)
    await writer.drain()


class FakeHost:
    """Answers sign-on and echo (unless told not to); other requests go to `script`."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.sign_ons = 0
        self.echoes = 0
        self.refuse_sign_ons = 0
        self.answer_echo = True
        self.requests: list[spec.Message] = []
        self._streams = StreamServer(self._serve)
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        return await self._streams.start("127.0.0.1", 0)

    async def stop(self) -> None:
        await self._streams.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        with contextlib.suppress(framing.ConnectionClosed, framing.FrameError, OSError):
            while True:
                doc = spec.decode(await framing.read_frame(reader, 1.0))
                if doc["t"] == "0800" and doc["70"] == mapping.SIGN_ON:
                    self.sign_ons += 1
                    refuse = self.refuse_sign_ons >= self.sign_ons
                    await write(writer, answer(doc, "91" if refuse else "00"))
                elif doc["t"] == "0800":
                    self.echoes += 1
                    if self.answer_echo:
                        await write(writer, answer(doc))
                elif doc["t"] == "0810":
                    self.requests.append(doc)
                else:
                    self.requests.append(doc)
                    await self.script(doc, writer)
