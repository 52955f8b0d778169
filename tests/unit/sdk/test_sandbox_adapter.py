"""The sandbox adapter in process: test instruments, replays, pending outcomes, follow-up rules."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import pathlib

import pytest

from adapters.sandbox import records, testdata
from adapters.sandbox.adapter import SandboxAdapter, SandboxConfig
from adapters.sandbox.worker import add_arguments, build_config
from adapters.sdk.convert import luhn_valid
from adapters.sdk.errors import NotSupportedError, UpstreamTimeoutError
from adapters.sdk.types import (
    AuthorizeRequest,
    CaptureRequest,
    Card,
    ChannelEvent,
    DeclineCode,
    InquireRequest,
    Money,
    OperationResult,
    OperationStatus,
    OperationType,
    PaymentMethod,
    PaymentMethodType,
    RefundRequest,
    VoidRequest,
    Wallet,
)

APPROVED, DECLINED, PENDING = (
    OperationStatus.APPROVED,
    OperationStatus.DECLINED,
    OperationStatus.PENDING,
)
JOURNAL_KEYS = {"ts", "op", "reference", "amount_minor", "currency", "original_reference", "replay"}
FAST = SandboxConfig(slow_s=0.05, hang_s=0.05, pending_resolve_s=0.02)


class Events:
    """A hand-written EventSink that keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[ChannelEvent] = []
        self.arrived = asyncio.Event()

    def publish(self, event: ChannelEvent) -> None:
        self.events.append(event)
        self.arrived.set()


def card(number: str) -> Card:
    return Card(number=number, expiry_month=12, expiry_year=2031, cvc="123")


def auth(
    reference: str, method: PaymentMethod, amount: int = 1000, capture: bool = False
) -> AuthorizeRequest:
    return AuthorizeRequest(reference, "m1", Money(amount, "USD"), method, capture=capture)


def inquire(reference: str) -> InquireRequest:
    return InquireRequest(reference, "m1", OperationType.AUTHORIZE, "", None)


def usd(amount: int) -> Money:
    return Money(amount, "USD")


async def started(config: SandboxConfig = FAST) -> tuple[SandboxAdapter, Events]:
    adapter, events = SandboxAdapter(config), Events()
    await adapter.start(events)
    return adapter, events


def test_test_cards_are_luhn_valid_and_cover_every_decline_code() -> None:
    assert all(luhn_valid(n) for n in testdata.CARDS)
    covered = {b.decline for b in testdata.CARDS.values() if b.decline is not None}
    assert covered == set(DeclineCode) - {DeclineCode.RISK_REJECTED}


@pytest.mark.parametrize(
    "number",
    [n for n, b in testdata.CARDS.items() if b.scenario is testdata.Scenario.DECLINE],
)
async def test_each_declining_card_declines_with_its_code(number: str) -> None:
    adapter, _ = await started()
    result = await adapter.authorize(auth("r", card(number)))
    behaviour = testdata.CARDS[number]
    assert (result.status, result.decline_code, result.raw_code) == (
        DECLINED,
        behaviour.decline,
        behaviour.raw_code,
    )


@pytest.mark.parametrize(
    "number", [testdata.CARD_APPROVE_VISA, testdata.CARD_APPROVE_MASTERCARD, "4111111111111111"]
)
async def test_approving_and_unlisted_cards_approve(number: str) -> None:
    adapter, _ = await started()
    result = await adapter.authorize(auth("r", card(number)))
    assert result.status is APPROVED and result.raw_code == "00"
    assert result.upstream_reference and len(result.authorization_code) == 6


@pytest.mark.parametrize(
    ("ending", "status", "code"),
    [
        (testdata.WALLET_APPROVE, APPROVED, None),
        ("1234", APPROVED, None),
        (testdata.WALLET_INSUFFICIENT_FUNDS, DECLINED, DeclineCode.INSUFFICIENT_FUNDS),
        (testdata.WALLET_DO_NOT_HONOR, DECLINED, DeclineCode.DO_NOT_HONOR),
        (testdata.WALLET_INVALID_PAYMENT_CODE, DECLINED, DeclineCode.INVALID_PAYMENT_CODE),
        (testdata.WALLET_BUYER_CANCELLED, DECLINED, DeclineCode.BUYER_CANCELLED),
        (testdata.WALLET_PENDING_APPROVE, PENDING, None),
    ],
)
@pytest.mark.parametrize("kind", [PaymentMethodType.ALIPAY, PaymentMethodType.WECHAT_PAY])
async def test_wallet_codes_choose_by_last_four_digits(
    kind: PaymentMethodType, ending: str, status: OperationStatus, code: DeclineCode | None
) -> None:
    adapter, _ = await started()
    wallet = Wallet(type=kind, auth_code=testdata.wallet_code(ending))
    result = await adapter.authorize(auth("r", wallet))
    assert (result.status, result.decline_code) == (status, code)


async def test_same_reference_answers_first_result_and_does_not_execute_again() -> None:
    adapter, _ = await started()
    first = await adapter.authorize(auth("r", card(testdata.CARD_APPROVE_VISA), capture=True))
    again = await adapter.authorize(auth("r", card(testdata.CARD_DO_NOT_HONOR), amount=5))
    assert again == first
    refund = RefundRequest("f", "m1", "r", "", usd(1000), usd(1000))
    assert (await adapter.refund(refund)).status is APPROVED
    assert (await adapter.refund(refund)).status is APPROVED  # a replay, not a second refund
    assert (await adapter.inquire(inquire("f"))).status is APPROVED


@pytest.mark.parametrize(
    ("method", "final", "code"),
    [
        (card(testdata.CARD_PENDING), APPROVED, None),
        (
            Wallet(PaymentMethodType.ALIPAY, testdata.wallet_code(testdata.WALLET_PENDING_APPROVE)),
            APPROVED,
            None,
        ),
        (
            Wallet(
                PaymentMethodType.WECHAT_PAY,
                testdata.wallet_code(testdata.WALLET_PENDING_DECLINE, "13"),
            ),
            DECLINED,
            DeclineCode.BUYER_CANCELLED,
        ),
    ],
)
async def test_pending_settles_then_inquire_and_event_tell_the_outcome(
    method: PaymentMethod, final: OperationStatus, code: DeclineCode | None
) -> None:
    adapter, events = await started()
    first = await adapter.authorize(auth("p", method))
    assert first.status is PENDING
    assert (await adapter.inquire(inquire("p"))).status is PENDING
    await events.arrived.wait()
    (event,) = events.events
    assert (event.reference, event.operation) == ("p", OperationType.AUTHORIZE)
    assert (event.result.status, event.result.decline_code) == (final, code)
    assert await adapter.inquire(inquire("p")) == event.result
    assert await adapter.authorize(auth("p", method)) == event.result


async def test_slow_card_approves_late_and_a_concurrent_replay_shares_the_answer() -> None:
    adapter, events = await started()
    request = auth("s", card(testdata.CARD_SLOW))
    first = asyncio.ensure_future(adapter.authorize(request))
    await asyncio.sleep(0)
    assert (await adapter.inquire(inquire("s"))).status is PENDING
    replay = await adapter.authorize(request)
    assert replay.status is APPROVED
    assert await first == replay
    assert events.events == []


async def test_timeout_card_hangs_while_the_upstream_has_approved() -> None:
    adapter, _ = await started()
    with pytest.raises(UpstreamTimeoutError):
        await adapter.authorize(auth("t", card(testdata.CARD_TIMEOUT)))
    assert (await adapter.inquire(inquire("t"))).status is APPROVED
    long_hang = dataclasses.replace(FAST, hang_s=30.0)
    adapter, _ = await started(long_hang)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(adapter.authorize(auth("t", card(testdata.CARD_TIMEOUT))), 0.05)
    assert (await adapter.inquire(inquire("t"))).status is APPROVED
    capture = CaptureRequest("c", "m1", "t", "", usd(1000), usd(1000))
    assert (await adapter.capture(capture)).status is APPROVED


async def test_inquire_of_unknown_reference_is_not_found() -> None:
    adapter, _ = await started()
    assert (await adapter.inquire(inquire("nobody"))).status is OperationStatus.NOT_FOUND


def _code(result: OperationResult) -> DeclineCode | None:
    assert result.status is (APPROVED if result.decline_code is None else DECLINED)
    return result.decline_code


async def test_follow_ups_are_checked_against_the_authorization() -> None:
    adapter, _ = await started()
    visa = card(testdata.CARD_APPROVE_VISA)
    await adapter.authorize(auth("a", visa, amount=1000))
    await adapter.authorize(auth("d", card(testdata.CARD_DO_NOT_HONOR)))

    def capture(ref: str, original: str, amount: int) -> CaptureRequest:
        return CaptureRequest(ref, "m1", original, "", usd(amount), usd(1000))

    def refund(ref: str, amount: int) -> RefundRequest:
        return RefundRequest(ref, "m1", "a", "", usd(amount), usd(600))

    invalid_state, invalid_amount = DeclineCode.INVALID_STATE, DeclineCode.INVALID_AMOUNT
    invalid_transaction = DeclineCode.INVALID_TRANSACTION
    assert _code(await adapter.capture(capture("c0", "nope", 10))) is invalid_transaction
    assert _code(await adapter.capture(capture("c1", "d", 10))) is invalid_state
    assert _code(await adapter.refund(refund("f0", 10))) is invalid_state  # not captured yet
    assert _code(await adapter.capture(capture("c2", "a", 1001))) is invalid_amount
    assert _code(await adapter.capture(capture("c3", "a", 600))) is None  # partial capture
    assert _code(await adapter.capture(capture("c4", "a", 100))) is invalid_state
    assert _code(await adapter.void(VoidRequest("v1", "m1", "a", "", usd(1000)))) is invalid_state
    assert _code(await adapter.refund(refund("f1", 400))) is None
    assert _code(await adapter.refund(refund("f2", 201))) is invalid_amount  # only 200 left
    assert _code(await adapter.refund(refund("f3", 200))) is None
    assert _code(await adapter.refund(refund("f4", 1))) is invalid_amount
    other = CaptureRequest("c5", "m1", "a", "", Money(10, "EUR"), Money(10, "EUR"))
    assert _code(await adapter.capture(other)) is invalid_transaction

    await adapter.authorize(auth("b", visa))
    assert _code(await adapter.void(VoidRequest("v2", "m1", "b", "", usd(1000)))) is None
    assert _code(await adapter.capture(capture("c6", "b", 1000))) is invalid_state


async def test_partial_follow_ups_refused_when_switched_off() -> None:
    config = dataclasses.replace(FAST, partial_capture=False, partial_refund=False)
    adapter, _ = await started(config)
    assert not adapter.capabilities().supports_partial_capture
    await adapter.authorize(auth("a", card(testdata.CARD_APPROVE_VISA)))
    with pytest.raises(NotSupportedError):
        await adapter.capture(CaptureRequest("c", "m1", "a", "", usd(10), usd(1000)))
    assert (await adapter.inquire(inquire("c"))).status is OperationStatus.NOT_FOUND
    await adapter.authorize(auth("s", card(testdata.CARD_APPROVE_VISA), capture=True))
    with pytest.raises(NotSupportedError):
        await adapter.refund(RefundRequest("f", "m1", "s", "", usd(10), usd(1000)))


async def test_oldest_records_are_forgotten_past_the_bound() -> None:
    adapter, _ = await started(dataclasses.replace(FAST, max_records=2))
    for ref in ("r1", "r2", "r3"):
        await adapter.authorize(auth(ref, card(testdata.CARD_APPROVE_VISA)))
    found = [(await adapter.inquire(inquire(r))).status for r in ("r1", "r2", "r3")]
    assert found == [OperationStatus.NOT_FOUND, APPROVED, APPROVED]


async def test_journal_counts_what_reached_the_adapter_without_card_data(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "journal.jsonl"
    adapter, _ = await started(dataclasses.replace(FAST, journal=str(path)))
    visa = card(testdata.CARD_APPROVE_VISA)
    await adapter.authorize(auth("a", visa, capture=True))
    await adapter.authorize(auth("a", visa, capture=True))
    await adapter.refund(RefundRequest("f", "m1", "a", "", usd(300), usd(1000)))
    await adapter.inquire(inquire("f"))
    await adapter.stop()
    text = path.read_text()
    assert testdata.CARD_APPROVE_VISA not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert all(set(x) <= JOURNAL_KEYS for x in lines)
    assert [(x["op"], x["reference"], x["replay"]) for x in lines] == [
        ("authorize", "a", False),
        ("authorize", "a", True),
        ("refund", "f", False),
        ("inquire", "f", False),
    ]
    assert (lines[0]["amount_minor"], lines[0]["currency"]) == (1000, "USD")
    assert lines[2]["original_reference"] == "a"


def _flags(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_flags_build_the_config() -> None:
    config = build_config(
        _flags("--name", "sbx2", "--currencies", "CNY", "--methods", "alipay", "--no-void")
    )
    assert (config.name, config.currencies, config.void) == ("sbx2", {"CNY"}, False)
    assert config.methods == {PaymentMethodType.ALIPAY}
    assert build_config(_flags()).currencies == {"USD", "EUR", "GBP", "CNY", "JPY"}


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--name", "Bad-Name"], "--name"),
        (["--currencies", "usd"], "--currencies"),
        (["--methods", "card,cash"], "--methods"),
        (["--min-amount", "0"], "--min-amount"),
        (["--min-amount", "10", "--max-amount", "5"], "--max-amount"),
        (["--slow-ms", "-1"], "--slow-ms"),
    ],
)
def test_bad_flags_are_named(argv: list[str], flag: str) -> None:
    with pytest.raises(ValueError, match=flag):
        build_config(_flags(*argv))


async def test_remembered_operations_stay_out_of_the_garbage_collectors_way() -> None:
    # Kept as objects, 500,000 records made full collections of about 240 ms that stopped the
    # worker; settled records are kept as plain tuples, which the collector untracks.
    adapter, _ = await started()
    visa = card(testdata.CARD_APPROVE_VISA)
    await adapter.authorize(auth("warm", visa))
    gc.collect()
    tracked = len(gc.get_objects())
    for i in range(5_000):
        await adapter.authorize(auth(f"a{i}", visa, capture=True))
        await adapter.refund(RefundRequest(f"f{i}", "m1", f"a{i}", "", usd(100), usd(1000)))
    gc.collect()
    assert len(gc.get_objects()) - tracked < 500
    # ... and read back as they were.
    refund = RefundRequest("f-more", "m1", "a4999", "", usd(900), usd(900))
    assert _code(await adapter.refund(refund)) is None
    assert _code(await adapter.refund(dataclasses.replace(refund, reference="f-x"))) is (
        DeclineCode.INVALID_AMOUNT
    )
    again = await adapter.authorize(auth("a0", visa, capture=True))
    assert (again.status, again.upstream_reference) == (APPROVED, "sbx-2")


@pytest.mark.parametrize(
    "result",
    [
        OperationResult(
            status=APPROVED, raw_code="00", upstream_reference="u", authorization_code="1"
        ),
        OperationResult(
            status=DECLINED, decline_code=DeclineCode.INSUFFICIENT_FUNDS, raw_code="51", message="m"
        ),
        OperationResult(status=APPROVED, approved_amount=Money(50, "JPY")),
    ],
)
def test_a_packed_record_reads_back_equal(result: OperationResult) -> None:
    payment = records.Payment(Money(1000, "EUR"), 7)
    payment.state, payment.captured, payment.refunded = records.State.CAPTURED, 1000, 250
    packed = records.pack(records.Operation(OperationType.REFUND, result, payment))
    back = records.unpack(packed)
    assert (back.op, back.result) == (OperationType.REFUND, result)
    assert back.payment is not None
    assert [getattr(back.payment, k) for k in records.Payment.__slots__] == [
        getattr(payment, k) for k in records.Payment.__slots__
    ]
