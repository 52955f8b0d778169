"""End to end: Gateway -> switch (real Redis) -> `payswitch adapter card` -> acquirer simulator."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator, Iterator

import pytest

from adapters.card import testcards
from adapters.sdk import convert
from adapters.sdk.types import OperationStatus, OperationType
from payswitch.channel.v1 import channel_service_pb2 as ch
from payswitch.common.v1 import decline_code_pb2 as dc
from payswitch.common.v1 import payment_status_pb2 as ps
from tests.integration.card.cardprocs import channel
from tests.integration.card.switchkit import Stack, gateway, running
from tests.integration.switch.helpers import authorize
from tests.support import RedisServer
from tests.unit.card.cardkit import eventually

DECLINED = OperationStatus.DECLINED


@pytest.fixture
def stack(redis_server: RedisServer, tmp_path: pathlib.Path) -> Iterator[Stack]:
    """Worker response timeout 0.5 s; the switch's reconciler at its default pace (200 ms)."""
    with running(tmp_path, redis_server.url, reconcile_ms=200) as started:
        yield started


@pytest.fixture
def patient_stack(redis_server: RedisServer, tmp_path: pathlib.Path) -> Iterator[Stack]:
    """A worker that waits 5 s for answers (a killed host, not a timeout, ends the wait) and a
    switch whose reconciler stays out of the way: only the card adapter's event can settle."""
    flags = ("--response-timeout", "5")
    with running(tmp_path, redis_server.url, *flags, reconcile_ms=60_000) as started:
        yield started


async def test_approve_and_decline_through_the_switch(stack: Stack) -> None:
    async with gateway(stack.switch) as g:
        paid = await g.authorize(authorize(1250, number=testcards.APPROVE))
        assert (paid.status, paid.channel) == (ps.PAYMENT_STATUS_CAPTURED, "card")
        assert paid.captured_amount.amount_minor == 1250
        assert paid.upstream_reference and paid.authorization_code
        declined = await g.authorize(authorize(500, number=testcards.DECLINES["51"]))
        assert declined.status == ps.PAYMENT_STATUS_DECLINED
        assert declined.decline.code == dc.DECLINE_CODE_INSUFFICIENT_FUNDS
        assert declined.decline.raw_code == "51"
        refused = await g.authorize(authorize(500, number=testcards.DECLINES["05"]))
        assert refused.decline.code == dc.DECLINE_CODE_DO_NOT_HONOR
        assert refused.decline.raw_code == "05"
    sale = stack.purchase(paid.upstream_reference)
    assert (sale.mti, sale.amount, sale.captured, sale.code) == ("0200", 1250, 1250, "00")
    assert sale.auth_id == paid.authorization_code and not sale.reversed
    assert sorted(r.code for r in stack.host().values()) == ["00", "05", "51"]
    assert testcards.APPROVE not in stack.logs()  # BIN and last four at most


async def test_capture_refunds_and_void_through_the_switch(stack: Stack) -> None:
    async with gateway(stack.switch) as g:
        held = await g.authorize(authorize(5000, number=testcards.APPROVE, manual=True))
        taken = await g.capture(held.id, 3000)
        part = await g.refund(held.id, 1000)
        rest = await g.refund(held.id)  # all that is left
        statuses = [held.status, taken.status, part.payment.status, rest.payment.status]
        assert statuses == [
            ps.PAYMENT_STATUS_AUTHORIZED,
            ps.PAYMENT_STATUS_CAPTURED,
            ps.PAYMENT_STATUS_PARTIALLY_REFUNDED,
            ps.PAYMENT_STATUS_REFUNDED,
        ]
        assert taken.captured_amount.amount_minor == 3000
        assert rest.refund.amount.amount_minor == 2000
        done = await g.get(held.id)
        assert done.refunded_amount.amount_minor == 3000
        assert [r.amount.amount_minor for r in done.refunds] == [1000, 2000]
        other = await g.authorize(authorize(700, number=testcards.APPROVE, manual=True))
        assert (await g.void(other.id)).status == ps.PAYMENT_STATUS_VOIDED
    first = stack.purchase(held.upstream_reference)
    assert (first.mti, first.amount, first.captured, first.refunded) == ("0100", 5000, 3000, 3000)
    assert len(first.completions) == 1 and not first.reversed
    refunds = [r for r in stack.host().values() if r.parent == first.key]
    assert sorted((r.amount, r.code) for r in refunds) == [(1000, "00"), (2000, "00")]
    released = stack.purchase(other.upstream_reference)
    assert released.reversed and released.captured == 0
    assert [r.key for r in stack.host().values() if r.reversed] == [released.key]


async def test_no_answer_is_pending_then_reversed_and_declined(stack: Stack) -> None:
    async with channel(stack.card.worker) as worker, gateway(stack.switch) as g:
        events = worker.WatchEvents(ch.WatchEventsRequest())
        try:
            await events.initial_metadata()  # subscribed: nothing published from now is missed
            pending = await g.authorize(authorize(1500, number=testcards.NO_ANSWER))
            assert pending.status == ps.PAYMENT_STATUS_PENDING
            watched = [p.status for p in await g.watch(pending.id)]
            async with asyncio.timeout(10):
                announced = [e async for e in _until(events, pending.id)][-1]
        finally:
            events.cancel()
        settled = await g.get(pending.id)
    assert watched[-1] == ps.PAYMENT_STATUS_DECLINED
    assert ps.PAYMENT_STATUS_CAPTURED not in watched
    assert (settled.status, settled.captured_amount.amount_minor) == (watched[-1], 0)
    assert settled.decline.code == dc.DECLINE_CODE_ISSUER_UNAVAILABLE
    assert settled.decline.raw_code == "68"  # response received too late
    event = convert.event_from_proto(announced)  # what the card adapter published
    assert (event.operation, event.result.status) == (OperationType.AUTHORIZE, DECLINED)
    assert event.result.raw_code == "68"
    [record] = [r for r in stack.host().values() if r.behaviour == "silent"]
    assert record.code == "00" and record.reversed  # approved by the host, then released
    # Settled once: by that event, or (when the switch drops it) by the reconciler's Inquire.
    assert len(stack.resolved_by(pending.id)) == 1


async def _until(
    events: AsyncIterator[ch.WatchEventsResponse], payment_id: str
) -> AsyncIterator[ch.WatchEventsResponse]:
    """The channel's events up to and including the first one about `payment_id`."""
    async for event in events:
        yield event
        if event.reference.endswith(payment_id):
            return


async def test_killed_acquirer_mid_authorization_ends_known_and_never_charged(
    patient_stack: Stack,
) -> None:
    stack = patient_stack
    sim = stack.card.simulator
    request = authorize(4200, number=testcards.NO_ANSWER)  # approved, never answered
    async with gateway(stack.switch) as g:
        in_flight = asyncio.ensure_future(g.authorize(request))
        await eventually(lambda: any(r.behaviour == "silent" for r in stack.host().values()))
        await asyncio.to_thread(sim.kill)  # mid-flight: the worker waits up to 5 s for it
        first = await in_flight
        assert first.status == ps.PAYMENT_STATUS_PENDING
        assert (await g.get(first.id)).status == ps.PAYMENT_STATUS_PENDING
        await asyncio.to_thread(sim.start)  # same port, same memory
        watched = [p.status for p in await g.watch(first.id)]
        assert watched[-1] == ps.PAYMENT_STATUS_DECLINED
        assert ps.PAYMENT_STATUS_CAPTURED not in watched
        assert (await g.get(first.id)).status == ps.PAYMENT_STATUS_DECLINED
        # The same key again replays the first answer (a snapshot): nothing is sent again.
        again = await g.authorize(request)
        assert (again.id, again.status) == (first.id, ps.PAYMENT_STATUS_PENDING)
        after = await g.authorize(authorize(900, number=testcards.APPROVE))
        assert after.status == ps.PAYMENT_STATUS_CAPTURED
    [record] = [r for r in stack.host().values() if r.behaviour == "silent"]
    assert record.code == "00" and record.reversed  # approved once, released, never charged
    assert not stack.purchase(after.upstream_reference).reversed
    assert stack.resolved_by(first.id) == ["event"]
