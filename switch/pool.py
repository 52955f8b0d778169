"""Long-lived gRPC channels to every adapter endpoint: capabilities, health, balancing, calls.

Each endpoint gets one grpc.aio channel and stub, created at start and never per request.
A call either returns a ChannelResult (approved, declined, or PENDING when the outcome is not
known) or raises NotSent, which proves the request never reached the upstream (the endpoint
refused the connection, or the adapter said its upstream was unreachable) so another endpoint
or channel may be tried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from adapters.sdk import framing
from payswitch.channel.v1 import channel_service_pb2 as ch
from payswitch.channel.v1 import channel_service_pb2_grpc as ch_grpc
from payswitch.common.v1 import money_pb2, payment_method_pb2
from switch.breaker import Breaker, BreakerState
from switch.config import ChannelConfig
from switch.link import ExchangeLink, LinkBroken
from switch.metrics import Metrics
from switch.model import (
    OP_AUTHORIZE,
    OP_CAPTURE,
    OP_REFUND,
    OP_VOID,
    OUTCOME_DECLINED,
    OUTCOME_PENDING,
    ChannelResult,
    Decline,
    MethodType,
    Operation,
    Outcome,
)
from switch.routeconfig import BreakerConfig

log = logging.getLogger("payswitch.pool")

# Refusals proving the request never reached the upstream; only the first is a system failure
# (it counts toward the endpoint's breaker), the others are a working adapter's answer.
_UNAVAILABLE = "ERROR_REASON_UPSTREAM_UNAVAILABLE"
_NOT_SENT_REASONS = {
    _UNAVAILABLE,
    "ERROR_REASON_OPERATION_NOT_SUPPORTED",
    "ERROR_REASON_INVALID_REQUEST",
}
_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    ("grpc.min_reconnect_backoff_ms", 100),
]


class NotSent(Exception):
    """The request certainly did not reach the channel's upstream; trying elsewhere is safe.

    `system` is False when a working adapter refused the request (invalid, not supported), so
    the refusal says nothing against the endpoint's health.
    """

    def __init__(self, message: str, *, system: bool = True) -> None:
        super().__init__(message)
        self.system = system


@dataclass(frozen=True, slots=True)
class Capabilities:
    methods: frozenset[MethodType]
    currencies: frozenset[str]
    min_amount: int
    max_amount: int
    manual_capture: bool
    partial_capture: bool
    void: bool
    refund: bool
    partial_refund: bool

    def accepts(self, method: MethodType, currency: str, amount: int, manual: bool) -> bool:
        return (
            method in self.methods
            and currency in self.currencies
            and amount >= self.min_amount
            and (self.max_amount == 0 or amount <= self.max_amount)
            and (self.manual_capture or not manual)
        )


@dataclass(slots=True)
class Endpoint:
    address: str
    channel: grpc.aio.Channel
    stub: ch_grpc.ChannelServiceStub
    link: ExchangeLink
    breaker: Breaker
    healthy: bool = False
    events_task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class ChannelClient:
    config: ChannelConfig
    endpoints: list[Endpoint]
    capabilities: Capabilities | None = None
    _next: int = field(default=0)
    # The config's name, as an attribute: read several times per payment, where a property
    # is a Python call each time.
    name: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.name = self.config.name

    def available(self) -> bool:
        """Described, and some endpoint is healthy with a breaker that lets a call through."""
        if self.capabilities is None:
            return False
        if len(self.endpoints) == 1:
            only = self.endpoints[0]
            return only.healthy and only.breaker.ready()
        return any(e.healthy and e.breaker.ready() for e in self.endpoints)

    def rotation(self) -> list[Endpoint]:
        """Healthy endpoints whose breaker is not open, starting at the next one in turn."""
        n = len(self.endpoints)
        if n == 1:  # the common case, without the turn-taking arithmetic
            only = self.endpoints[0]
            return [only] if only.healthy and only.breaker.ready() else []
        start = self._next % n
        self._next += 1
        ordered = [self.endpoints[(start + i) % n] for i in range(n)]
        return [e for e in ordered if e.healthy and e.breaker.ready()]


EventHandler = Callable[[str, ch.WatchEventsResponse], Awaitable[None]]


class Pool:
    """The switch's side of the Channel contract."""

    def __init__(
        self,
        channels: Sequence[ChannelConfig],
        *,
        health_interval_s: float = 1.0,
        use_exchange: bool = True,
        breaker: BreakerConfig | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._health_interval = health_interval_s
        self._use_exchange = use_exchange
        self._metrics = metrics
        self.channels: dict[str, ChannelClient] = {}
        for cfg in channels:
            eps = []
            for address in cfg.endpoints:
                chan = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
                stub = ch_grpc.ChannelServiceStub(chan)
                link = ExchangeLink(stub=stub, address=address)
                brk = Breaker(
                    breaker or BreakerConfig(), on_change=self._breaker_moved(cfg.name, address)
                )
                eps.append(
                    Endpoint(address=address, channel=chan, stub=stub, link=link, breaker=brk)
                )
            self.channels[cfg.name] = ChannelClient(config=cfg, endpoints=eps)
        self._tasks: list[asyncio.Task[None]] = []
        self._on_event: EventHandler | None = None

    async def start(self, on_event: EventHandler | None = None) -> None:
        self._on_event = on_event
        await asyncio.gather(
            *(self._probe(c, e) for c in self.channels.values() for e in c.endpoints)
        )
        self._tasks.append(asyncio.create_task(self._health_loop(), name="pool-health"))

    async def close(self) -> None:
        for c in self.channels.values():
            for e in c.endpoints:
                if e.events_task:
                    e.events_task.cancel()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(
            *self._tasks,
            *(e.events_task for c in self.channels.values() for e in c.endpoints if e.events_task),
            return_exceptions=True,
        )
        await asyncio.gather(*(e.link.close() for c in self.channels.values() for e in c.endpoints))
        await asyncio.gather(
            *(e.channel.close() for c in self.channels.values() for e in c.endpoints)
        )

    # --- health and capabilities ----------------------------------------------------------

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self._health_interval)
            await asyncio.gather(
                *(self._probe(c, e) for c in self.channels.values() for e in c.endpoints)
            )

    async def _probe(self, client: ChannelClient, ep: Endpoint) -> None:
        was = ep.healthy
        try:
            # Described once per channel for its capabilities, and again per endpoint whenever
            # its link is down, for the Exchange socket it serves now (a restarted worker may
            # listen on another port).
            relink = self._use_exchange and not ep.link.ready
            if client.capabilities is None or relink:
                desc = await ep.stub.Describe(ch.DescribeRequest(), timeout=2.0)
                if client.capabilities is None:
                    client.capabilities = _capabilities(desc)
                if desc.name and desc.name != client.name:
                    log.warning(
                        "channel describes itself differently",
                        extra={"channel": client.name, "described_as": desc.name},
                    )
                ep.link.socket_address = _socket_target(desc.exchange_address, ep.address)
            health = health_pb2_grpc.HealthStub(ep.channel)
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2.0)
            ep.healthy = reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.aio.AioRpcError:
            ep.healthy = False
        if ep.healthy != was:
            log.info(
                "endpoint %s",
                "healthy" if ep.healthy else "unhealthy",
                extra={"channel": client.name, "endpoint": ep.address},
            )
        if ep.healthy and self._on_event and (ep.events_task is None or ep.events_task.done()):
            ep.events_task = asyncio.create_task(self._watch_events(client, ep))
        if ep.healthy and self._use_exchange and not ep.link.ready:
            await ep.link.open()

    async def _watch_events(self, client: ChannelClient, ep: Endpoint) -> None:
        assert self._on_event is not None
        with contextlib.suppress(grpc.aio.AioRpcError):
            async for event in ep.stub.WatchEvents(ch.WatchEventsRequest()):
                try:
                    await self._on_event(client.name, event)
                except Exception:
                    log.exception("handling a channel event failed", extra={"channel": client.name})

    def mark_down(self, ep: Endpoint) -> None:
        ep.healthy = False

    def reconfigure_breakers(self, config: BreakerConfig) -> None:
        """New breaker thresholds for every endpoint (a config reload)."""
        for c in self.channels.values():
            for e in c.endpoints:
                e.breaker.reconfigure(config)

    def breaker_states(self) -> dict[str, str]:
        """`channel|endpoint` -> the endpoint's breaker state name, for `routes explain`."""
        return {
            f"{c.name}|{e.address}": e.breaker.state.name
            for c in self.channels.values()
            for e in c.endpoints
        }

    def _breaker_moved(
        self, channel: str, address: str
    ) -> Callable[[BreakerState, BreakerState], None]:
        def moved(was: BreakerState, to: BreakerState) -> None:
            log.warning(
                "circuit breaker %s",
                to.name.lower().replace("_", "-"),
                extra={"channel": channel, "endpoint": address, "from": was.name, "to": to.name},
            )
            if self._metrics is not None:
                self._metrics.breaker_moved(channel, address, to.name, to.value)

        return moved

    # --- calls ----------------------------------------------------------------------------

    async def call(
        self, channel: str, op: Operation, request: Any, timeout_s: float
    ) -> ChannelResult:
        """Send one operation; try each healthy endpoint until one takes the request."""
        client = self.channels[channel]
        endpoints = client.rotation()
        if not endpoints:
            raise NotSent(f"channel {channel} has no healthy endpoint")
        deadline = time.monotonic() + timeout_s
        last: NotSent | None = None
        for ep in endpoints:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if not ep.breaker.acquire():
                continue  # another call took the half-open breaker's trial
            try:
                return await self._call_endpoint(ep, op, request, remaining)
            except NotSent as exc:
                if exc.system:
                    ep.breaker.failure()
                else:
                    ep.breaker.success()
                last = exc
        raise last or NotSent(f"channel {channel}: no endpoint could take the request now")

    async def _call_endpoint(
        self, ep: Endpoint, op: Operation, request: Any, timeout_s: float
    ) -> ChannelResult:
        """One call; a timeout or a broken call counts against the endpoint's breaker."""
        if ep.link.ready:
            try:
                answer = await ep.link.send(_KINDS[op._name_], request, timeout_s)
            except TimeoutError:
                return _unknown(ep, "the channel did not answer in time")
            except LinkBroken as exc:
                if exc.written:
                    return _unknown(ep, f"the link to the channel broke ({exc}); outcome unknown")
                # Certainly not sent on the stream: the unary call below is the first attempt.
            else:
                if answer.HasField("result"):
                    ep.breaker.success()
                    return result_from_proto(answer.result)
                reason = _not_sent_reason(answer.error)
                if reason:
                    raise NotSent(
                        f"{ep.address}: {answer.error.message}", system=reason == _UNAVAILABLE
                    )
                return _unknown(ep, f"the channel failed ({answer.error.message}); outcome unknown")
        method = _METHODS[op](ep.stub)
        try:
            reply = await method(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            reason = _never_sent(exc)
            if reason:
                if reason == _UNAVAILABLE:
                    self.mark_down(ep)
                raise NotSent(
                    f"{ep.address}: {exc.code().name}: {exc.details()}",
                    system=reason == _UNAVAILABLE,
                ) from exc
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return _unknown(ep, "the channel did not answer in time")
            return _unknown(
                ep, f"the call to the channel broke ({exc.code().name}); outcome unknown"
            )
        ep.breaker.success()
        return result_from_proto(reply.result)

    async def inquire(
        self, channel: str, request: ch.InquireRequest, timeout_s: float
    ) -> ChannelResult:
        client = self.channels.get(channel)
        if client is None:
            raise NotSent(f"channel {channel} is not configured")
        for ep in client.rotation():
            try:
                reply = await ep.stub.Inquire(request, timeout=timeout_s)
                return result_from_proto(reply.result)
            except grpc.aio.AioRpcError as exc:
                if _never_sent(exc):
                    self.mark_down(ep)
                continue
        raise NotSent(f"channel {channel}: no endpoint answered the inquiry")


_METHODS: dict[Operation, Callable[[ch_grpc.ChannelServiceStub], Any]] = {
    OP_AUTHORIZE: lambda s: s.Authorize,
    OP_CAPTURE: lambda s: s.Capture,
    OP_VOID: lambda s: s.Void,
    OP_REFUND: lambda s: s.Refund,
}


# Keyed by the operation's name: an enum member hashes through Python-level code.
_KINDS = {op._name_: op._name_.lower() for op in (OP_AUTHORIZE, OP_CAPTURE, OP_VOID, OP_REFUND)}


def _socket_target(advertised: str, endpoint: str) -> str:
    """Where to reach an advertised Exchange socket; "" (use the RPC) when there is none or the
    worker advertised something unusable."""
    if not advertised:
        return ""
    try:
        return framing.reachable(advertised, endpoint)
    except ValueError:
        log.warning(
            "worker advertised an unusable exchange socket",
            extra={"endpoint": endpoint, "exchange_address": advertised},
        )
        return ""


def _unknown(ep: Endpoint, message: str) -> ChannelResult:
    ep.breaker.failure()
    return ChannelResult(outcome=OUTCOME_PENDING, message=message)


def _never_sent(exc: grpc.aio.AioRpcError) -> str:
    """Why a failed call provably never reached the upstream ('' when it may have)."""
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        details = exc.details() or ""
        if "failed to connect" in details or "Connection refused" in details:
            return _UNAVAILABLE
    status = rpc_status.from_call(exc)
    return "" if status is None else _not_sent_reason(status)


def _not_sent_reason(status: status_pb2.Status) -> str:
    """The reason of an adapter's refusal that says the request never reached its upstream."""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason if info.reason in _NOT_SENT_REASONS else ""
    return ""


def _capabilities(d: ch.DescribeResponse) -> Capabilities:
    return Capabilities(
        methods=frozenset(MethodType(m) for m in d.payment_methods if m in (1, 2, 3)),
        currencies=frozenset(d.currencies),
        min_amount=d.min_amount_minor,
        max_amount=d.max_amount_minor,
        manual_capture=d.supports_manual_capture,
        partial_capture=d.supports_partial_capture,
        void=d.supports_void,
        refund=d.supports_refund,
        partial_refund=d.supports_partial_refund,
    )


# OperationStatus numbers to outcomes (a dict: calling the enum by value costs about 1 us).
_OUTCOMES = {o.value: o for o in Outcome}


def result_from_proto(r: ch.OperationResult) -> ChannelResult:
    outcome = _OUTCOMES.get(r.status, OUTCOME_PENDING)
    return ChannelResult(
        outcome=outcome,
        decline=Decline(code=r.decline_code, raw_code=r.raw_code, message=r.message)
        if outcome is OUTCOME_DECLINED
        else None,
        message=r.message,
        upstream_reference=r.upstream_reference,
        authorization_code=r.authorization_code,
        approved_amount=r.approved_amount.amount_minor if r.HasField("approved_amount") else None,
    )


def money(amount: int, currency: str) -> money_pb2.Money:
    return money_pb2.Money(amount_minor=amount, currency=currency)


def jitter(base_ms: int, attempt: int, cap_ms: int) -> int:
    """Capped exponential backoff with full jitter, in milliseconds."""
    return random.randint(0, min(cap_ms, base_ms * (2 ** min(attempt, 20))))


PaymentMethodProto = payment_method_pb2.PaymentMethod
