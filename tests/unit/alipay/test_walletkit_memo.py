"""The wallets' operation memo: once per reference, repeats answered from memory, nothing lost."""

from __future__ import annotations

import asyncio

import pytest

from adapters.sdk.errors import UpstreamTimeoutError, UpstreamUnavailableError
from adapters.sdk.types import (
    ChannelEvent,
    DeclineCode,
    InquireRequest,
    Money,
    OperationResult,
    OperationStatus,
    OperationType,
)
from adapters.walletkit.memo import OpenOperation, OperationMemo, upstream_call
from adapters.walletkit.wallet import held_to_asked
from adapters.walletkit.watcher import PendingWatcher

AUTH, REFUND = OperationType.AUTHORIZE, OperationType.REFUND


class Upstream:
    """A hand-written upstream: counts sends and queries, answers what it is told."""

    def __init__(self, answer: OperationResult) -> None:
        self.answer = answer
        self.sends = 0
        self.queries = 0
        self.fail_with: Exception | None = None

    async def send(self) -> OperationResult:
        self.sends += 1
        await asyncio.sleep(0.01)
        if self.fail_with is not None:
            raise self.fail_with
        return self.answer

    async def query(self) -> OperationResult:
        self.queries += 1
        return self.answer


async def test_concurrent_repeats_send_once_and_share_the_first_result() -> None:
    memo, upstream = OperationMemo(), Upstream(OperationResult.approved(raw_code="ok"))
    results = await asyncio.gather(
        *(memo.once("r1", AUTH, "r1", send=upstream.send, repeat=upstream.query) for _ in range(5))
    )
    assert upstream.sends == 1 and upstream.queries == 0
    assert all(r == results[0] for r in results) and results[0].status is OperationStatus.APPROVED


async def test_unknown_outcome_stays_open_and_a_repeat_asks_instead_of_sending() -> None:
    memo, upstream = OperationMemo(), Upstream(OperationResult.approved())
    upstream.fail_with = UpstreamTimeoutError("no answer")
    with pytest.raises(UpstreamTimeoutError):
        await memo.once("r1", AUTH, "r1", send=upstream.send, repeat=upstream.query)
    assert memo.open("r1") is not None
    upstream.fail_with = None
    result = await memo.once("r1", AUTH, "r1", send=upstream.send, repeat=upstream.query)
    assert (upstream.sends, upstream.queries, result.status) == (1, 1, OperationStatus.APPROVED)
    assert memo.open("r1") is None and memo.final("r1") == result


async def test_a_request_that_never_left_leaves_nothing_open() -> None:
    memo, upstream = OperationMemo(), Upstream(OperationResult.approved())
    upstream.fail_with = UpstreamUnavailableError("refused")
    with pytest.raises(UpstreamUnavailableError):
        await memo.once("r1", AUTH, "r1", send=upstream.send)
    assert memo.open("r1") is None and memo.final("r1") is None


class Platform:
    """A hand-written platform of calls: each notes itself as an upstream call, as the
    adapters' transports do, and the ones listed in `refusing` cannot be sent."""

    def __init__(self, *refusing: str) -> None:
        self.refusing = set(refusing)
        self.calls: list[str] = []

    async def call(self, name: str) -> OperationResult:
        upstream_call()
        self.calls.append(name)
        if name in self.refusing:
            raise UpstreamUnavailableError(f"{name}: connection refused")
        return OperationResult.pending(f"{name}: no final answer")

    async def pay_then_query(self) -> OperationResult:
        await self.call("pay")  # answered, but unclear: the query decides
        return await self.call("query")

    async def query(self) -> OperationResult:
        return await self.call("query")


async def test_only_the_first_call_that_cannot_be_sent_is_not_sent() -> None:
    memo = OperationMemo()
    # The payment itself cannot be sent: nothing left, nothing open, "not sent".
    refused = Platform("pay")
    with pytest.raises(UpstreamUnavailableError):
        await memo.once("r1", AUTH, "r1", send=refused.pay_then_query, repeat=refused.query)
    assert memo.open("r1") is None
    # The payment left and its confirming query cannot be sent: unknown, PENDING, kept open.
    platform = Platform("query")
    sent = await memo.once("r2", AUTH, "r2", send=platform.pay_then_query, repeat=platform.query)
    assert (sent.status, sent.raw_code) == (OperationStatus.PENDING, "SENT_NOT_CONFIRMED")
    assert memo.open("r2") is not None and memo.final("r2") is None
    # A repeat asks; its query cannot be sent either: still PENDING (the payment left earlier).
    again = await memo.once("r2", AUTH, "r2", send=platform.pay_then_query, repeat=platform.query)
    assert again.status is OperationStatus.PENDING and memo.open("r2") is not None
    assert platform.calls == ["pay", "query", "query"]


async def test_a_repeat_of_an_open_operation_that_cannot_be_sent_is_pending() -> None:
    # A cancel (or refund) sent again while its first outcome is unknown: the first one left,
    # so a repeat that cannot be sent is no "not sent".
    memo, upstream = OperationMemo(), Upstream(OperationResult.approved())
    upstream.fail_with = UpstreamTimeoutError("no answer")
    with pytest.raises(UpstreamTimeoutError):
        await memo.once("v1", OperationType.VOID, "r1", send=upstream.send)
    upstream.fail_with = UpstreamUnavailableError("refused")
    result = await memo.once("v1", OperationType.VOID, "r1", send=upstream.send)
    assert result.status is OperationStatus.PENDING and memo.open("v1") is not None


async def test_pending_is_not_remembered_as_final_but_stays_open() -> None:
    memo, upstream = OperationMemo(), Upstream(OperationResult.pending("buyer confirming"))
    await memo.once("r1", AUTH, "r1", send=upstream.send)
    assert memo.final("r1") is None and memo.open("r1") is not None
    assert memo.settle("r1", OperationResult.declined(DeclineCode.BUYER_CANCELLED))
    assert not memo.settle("r1", OperationResult.approved())
    assert memo.final("r1") is not None and memo.final("r1").status is OperationStatus.DECLINED  # type: ignore[union-attr]


class Sink:
    def __init__(self) -> None:
        self.events: list[ChannelEvent] = []

    def publish(self, event: ChannelEvent) -> None:
        self.events.append(event)


async def test_watcher_publishes_each_settled_operation_once() -> None:
    memo, sink = OperationMemo(), Sink()
    answers = {"r1": OperationResult.pending(), "r2": OperationResult.approved()}

    async def resolve(op: OpenOperation) -> OperationResult:
        return answers[op.reference]

    memo.begin("r1", AUTH, "r1")
    memo.begin("r2", AUTH, "r2")
    watcher = PendingWatcher(memo=memo, resolve=resolve, events=sink, interval=60, give_up_after=60)
    await watcher.sweep()
    assert [e.reference for e in sink.events] == ["r2"]
    answers["r1"] = OperationResult.approved()
    await watcher.sweep()
    assert [e.reference for e in sink.events] == ["r2", "r1"]
    assert memo.open_operations() == []


async def test_operations_past_the_polling_window_are_left_to_the_switch() -> None:
    memo, sink = OperationMemo(), Sink()
    asked: list[str] = []

    async def resolve(op: OpenOperation) -> OperationResult:
        asked.append(op.reference)
        return OperationResult.pending()

    memo.begin("old", AUTH, "old")
    watcher = PendingWatcher(memo=memo, resolve=resolve, events=sink, interval=60, give_up_after=0)
    await asyncio.sleep(0.01)
    await watcher.sweep()
    assert memo.open("old") is None
    assert asked == [] and sink.events == []


async def test_a_payment_sent_and_unanswered_is_not_found_only_after_the_polling_window() -> None:
    memo = OperationMemo()
    lost = Upstream(OperationResult.approved())
    lost.fail_with = UpstreamTimeoutError("no answer in time")
    with pytest.raises(UpstreamTimeoutError):
        await memo.once("pay-1", AUTH, "pay-1", send=lost.send)
    no_record = OperationResult(status=OperationStatus.NOT_FOUND, raw_code="TRADE_NOT_EXIST")

    async def platform(op: OpenOperation) -> OperationResult:
        return no_record

    inquire = InquireRequest("pay-1", "m", AUTH, "", None)
    # Just sent: the platform may not show it yet, so it is not "never received".
    early = await memo.inquire(inquire, platform, unsure_for_s=0.2)
    assert early.status is OperationStatus.PENDING
    assert early.raw_code == "TRADE_NOT_EXIST"
    assert memo.open("pay-1") is not None, "still open: polled and asked about again"
    await asyncio.sleep(0.25)
    late = await memo.inquire(inquire, platform, unsure_for_s=0.2)
    assert late.status is OperationStatus.NOT_FOUND
    # A reference this adapter never sent is NOT_FOUND at once.
    never = InquireRequest("pay-2", "m", AUTH, "", None)
    answer = await memo.inquire(never, platform, unsure_for_s=60)
    assert answer.status is OperationStatus.NOT_FOUND


async def test_an_operation_answered_as_made_is_never_not_found_however_old() -> None:
    # The platform answered it as made, its query does not show it (yet): money may have moved.
    memo, sink = OperationMemo(), Sink()

    async def made_not_shown() -> OperationResult:
        await memo.note_answered_made("rf-1")
        return OperationResult.pending("answered as made, not shown by the query yet")

    await memo.once("rf-1", REFUND, "pay-1", send=made_not_shown)
    asked: list[str] = []
    shown: OperationResult = OperationResult(status=OperationStatus.NOT_FOUND, raw_code="10000")

    async def platform(op: OpenOperation) -> OperationResult:
        asked.append(op.reference)
        return shown

    watcher = PendingWatcher(memo=memo, resolve=platform, events=sink, interval=60, give_up_after=0)
    await asyncio.sleep(0.01)
    await watcher.sweep()  # past the polling window: no longer polled, but not forgotten
    assert asked == [] and memo.open("rf-1") is not None
    inquire = InquireRequest("rf-1", "m", REFUND, "pay-1", None)
    late = await memo.inquire(inquire, platform, unsure_for_s=0, platform="Alipay")
    assert (late.status, late.raw_code) == (OperationStatus.PENDING, "MADE_NOT_SHOWN")
    assert "refund as made" in late.message and "reconcile with Alipay" in late.message
    shown = OperationResult.approved()
    assert (await memo.inquire(inquire, platform)).status is OperationStatus.APPROVED
    assert memo.open("rf-1") is None


def test_memory_is_bounded() -> None:
    memo = OperationMemo(capacity=3)
    for i in range(5):
        memo.begin(f"o{i}", AUTH, f"o{i}")
        memo.settle(f"f{i}", OperationResult.approved())
    assert [op.reference for op in memo.open_operations()] == ["o2", "o3", "o4"]
    assert memo.final("f0") is None and memo.final("f4") is not None


def test_a_success_for_another_amount_or_currency_is_held_not_approved() -> None:
    asked = Money(8888, "CNY")
    same = OperationResult.approved(approved_amount=Money(8888, "CNY"), upstream_reference="T1")
    assert held_to_asked(same, asked, "pay-1") is same
    for other in (Money(8887, "CNY"), Money(8888, "USD")):
        held = held_to_asked(OperationResult.approved(approved_amount=other), asked, "pay-1")
        assert (held.status, held.raw_code) == (OperationStatus.PENDING, "AMOUNT_MISMATCH")
        assert f"{other.amount_minor} {other.currency}" in held.message
    declined = OperationResult.declined(DeclineCode.DO_NOT_HONOR)
    assert held_to_asked(declined, asked, "pay-1") is declined
    # Nothing asked to hold it to (a caller that gave no amount): the platform's word as it is.
    assert held_to_asked(same, None, "pay-1") is same
