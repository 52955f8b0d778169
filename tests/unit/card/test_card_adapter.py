"""The card adapter against the simulator on a real socket: every flow and its outcome."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapters.card import mapping, testcards
from adapters.card.adapter import CardAdapter
from adapters.card.conformance import HostStateCounter
from adapters.sdk.errors import InvalidRequestError, NotSupportedError, UpstreamUnavailableError
from adapters.sdk.types import (
    AuthorizeRequest,
    DeclineCode,
    Money,
    OperationStatus,
    OperationType,
    PaymentMethodType,
    Wallet,
)
from tests.support import free_port
from tests.unit.card.cardkit import (
    AdapterFactory,
    Events,
    RunningSimulator,
    auth,
    capture,
    card,
    card_config,
    host_record,
    inquire,
    refund,
    void,
)

Adapter = tuple[CardAdapter, Events]
APPROVED = OperationStatus.APPROVED
DECLINED = OperationStatus.DECLINED


async def test_authorize_partial_capture_and_refund(adapter: Adapter, tmp_path: Path) -> None:
    card_adapter, _ = adapter
    approved = await card_adapter.authorize(auth("a-1", testcards.APPROVE, 1000))
    assert approved.status is APPROVED
    assert approved.raw_code == "00" and len(approved.authorization_code) == 6
    captured = await card_adapter.capture(capture("c-1", "a-1", 600, 1000))
    assert captured.status is APPROVED and captured.approved_amount == Money(600, "USD")
    refunded = await card_adapter.refund(refund("r-1", "a-1", 100, 600))
    assert refunded.status is APPROVED
    too_much = await card_adapter.refund(refund("r-2", "a-1", 501, 600))
    assert too_much.status is DECLINED and too_much.raw_code == "13"
    assert too_much.decline_code is DeclineCode.INVALID_AMOUNT
    host = host_record(tmp_path / "host.jsonl", approved.upstream_reference)
    assert (host.captured, host.refunded, host.reversed) == (600, 100, False)


async def test_capture_twice_is_refused_without_asking_the_host(adapter: Adapter) -> None:
    card_adapter, _ = adapter
    await card_adapter.authorize(auth("a-2", testcards.APPROVE, 1000))
    assert (await card_adapter.capture(capture("c-2", "a-2", 1000, 1000))).status is APPROVED
    again = await card_adapter.capture(capture("c-3", "a-2", 1000, 1000))
    assert again.status is DECLINED and again.decline_code is DeclineCode.INVALID_STATE


async def test_amounts_over_what_is_left_are_declined_without_asking_the_host(
    simulator: RunningSimulator, make_adapter: AdapterFactory
) -> None:
    # Not every acquirer refuses a completion or refund over the authorized or captured
    # amount: the channel checks its own ledger and sends nothing.
    card_adapter, _ = await make_adapter(simulator.port)
    await card_adapter.authorize(auth("a-3", testcards.APPROVE, 1000))
    result = await card_adapter.capture(capture("c-4", "a-3", 1001, 1000))
    assert result.status is DECLINED and result.raw_code == "13"
    assert result.decline_code is DeclineCode.INVALID_AMOUNT
    assert "0220" not in simulator.host.seen
    assert (await card_adapter.capture(capture("c-5", "a-3", 999, 1000))).status is APPROVED
    assert (await card_adapter.refund(refund("r-3", "a-3", 600, 999))).status is APPROVED
    refunds_sent = simulator.host.seen.count("0200")
    over = await card_adapter.refund(refund("r-4", "a-3", 400, 999))  # 399 left
    assert over.status is DECLINED and over.decline_code is DeclineCode.INVALID_AMOUNT
    assert simulator.host.seen.count("0200") == refunds_sent, "nothing sent"
    assert (await card_adapter.refund(refund("r-5", "a-3", 399, 999))).status is APPROVED


@pytest.mark.parametrize("code", testcards.DECLINE_CODES)
async def test_every_test_card_declines_with_its_code(adapter: Adapter, code: str) -> None:
    card_adapter, _ = adapter
    result = await card_adapter.authorize(auth(f"d-{code}", testcards.DECLINES[code]))
    assert result.status is DECLINED
    assert result.raw_code == code
    assert result.decline_code is mapping.DECLINES[code]


async def test_sale_is_captured_and_refundable_at_once(adapter: Adapter, tmp_path: Path) -> None:
    card_adapter, _ = adapter
    sale = await card_adapter.authorize(auth("s-1", testcards.APPROVE, 2500, "EUR", capture=True))
    assert sale.status is APPROVED
    late_capture = await card_adapter.capture(capture("c-s", "s-1", 2500, 2500, "EUR"))
    assert late_capture.decline_code is DeclineCode.INVALID_STATE
    assert (await card_adapter.refund(refund("r-s", "s-1", 2500, 2500, "EUR"))).status is APPROVED
    host = host_record(tmp_path / "host.jsonl", sale.upstream_reference)
    assert (host.captured, host.refunded) == (2500, 2500)


async def test_jpy_amounts_are_sent_in_yen(adapter: Adapter, tmp_path: Path) -> None:
    card_adapter, _ = adapter
    result = await card_adapter.authorize(auth("y-1", testcards.APPROVE, 1234, "JPY"))
    host = host_record(tmp_path / "host.jsonl", result.upstream_reference)
    assert (host.amount, host.currency) == (1234, "JPY")


async def test_void_reverses_the_authorization(adapter: Adapter, tmp_path: Path) -> None:
    card_adapter, _ = adapter
    approved = await card_adapter.authorize(auth("a-v", testcards.APPROVE, 1000))
    assert (await card_adapter.void(void("v-1", "a-v"))).status is APPROVED
    assert host_record(tmp_path / "host.jsonl", approved.upstream_reference).reversed
    late = await card_adapter.capture(capture("c-v", "a-v", 1000, 1000))
    assert late.status is DECLINED and late.decline_code is DeclineCode.INVALID_STATE
    # The authorization itself stays approved; its void is what released it.
    assert (await card_adapter.inquire(inquire("a-v"))).status is APPROVED
    assert (await card_adapter.void(void("v-2", "a-v"))).status is APPROVED


async def test_void_after_capture_is_refused(adapter: Adapter) -> None:
    card_adapter, _ = adapter
    await card_adapter.authorize(auth("a-vc", testcards.APPROVE, 1000))
    await card_adapter.capture(capture("c-vc", "a-vc", 1000, 1000))
    result = await card_adapter.void(void("v-vc", "a-vc"))
    assert result.status is DECLINED and result.decline_code is DeclineCode.INVALID_STATE


async def test_follow_ups_of_unknown_or_declined_originals_are_declined(adapter: Adapter) -> None:
    card_adapter, _ = adapter
    unknown = await card_adapter.capture(capture("c-x", "never-sent", 100, 100))
    assert unknown.status is DECLINED
    assert unknown.decline_code is DeclineCode.INVALID_TRANSACTION
    await card_adapter.authorize(auth("a-d", testcards.DECLINES["05"]))
    refused = await card_adapter.refund(refund("r-d", "a-d", 100, 100))
    assert refused.decline_code is DeclineCode.INVALID_STATE
    # A repeat of a locally refused reference gets the same answer.
    assert await card_adapter.refund(refund("r-d", "a-d", 100, 100)) == refused


async def test_same_reference_is_sent_once(adapter: Adapter, simulator: RunningSimulator) -> None:
    card_adapter, _ = adapter
    first, second = await asyncio.gather(
        card_adapter.authorize(auth("dup-1", testcards.APPROVE)),
        card_adapter.authorize(auth("dup-1", testcards.APPROVE)),
    )
    third = await card_adapter.authorize(auth("dup-1", testcards.APPROVE))
    assert first == second == third
    assert simulator.host.seen.count("0100") == 1


async def test_inquire_tells_outcomes_and_not_found(adapter: Adapter) -> None:
    card_adapter, _ = adapter
    assert (await card_adapter.inquire(inquire("nope"))).status is OperationStatus.NOT_FOUND
    await card_adapter.authorize(auth("i-1", testcards.DECLINES["51"]))
    found = await card_adapter.inquire(inquire("i-1"))
    assert found.status is DECLINED and found.decline_code is DeclineCode.INSUFFICIENT_FUNDS


async def test_expired_card_is_declined_by_the_host(adapter: Adapter) -> None:
    card_adapter, _ = adapter
    expired = card(testcards.APPROVE, 1, 2020)
    result = await card_adapter.authorize(
        AuthorizeRequest("e-1", "m1", Money(100, "USD"), expired, False)
    )
    assert result.decline_code is DeclineCode.EXPIRED_CARD and result.raw_code == "54"


async def test_luhn_failure_is_declined_by_the_host(adapter: Adapter) -> None:
    card_adapter, _ = adapter
    result = await card_adapter.authorize(auth("l-1", "4000000000000003"))
    assert result.decline_code is DeclineCode.INVALID_CARD_NUMBER and result.raw_code == "14"


WALLET = Wallet(PaymentMethodType.ALIPAY, "28" * 9)


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (auth("bad ref", testcards.APPROVE), InvalidRequestError),
        (auth("b-1", "4000-0000"), InvalidRequestError),
        (auth("b-2", testcards.APPROVE, 0), InvalidRequestError),
        (auth("b-3", testcards.APPROVE, 10**12), InvalidRequestError),
        (auth("b-4", testcards.APPROVE, 100, "KRW"), InvalidRequestError),
        (AuthorizeRequest("b-5", "m1", Money(1, "USD"), WALLET, False), NotSupportedError),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_sent(
    adapter: Adapter,
    simulator: RunningSimulator,
    request_: AuthorizeRequest,
    error: type[Exception],
) -> None:
    card_adapter, _ = adapter
    with pytest.raises(error):
        await card_adapter.authorize(request_)
    assert "0100" not in simulator.host.seen
    not_found = await card_adapter.inquire(inquire(request_.reference))
    assert not_found.status is OperationStatus.NOT_FOUND


async def test_unreachable_acquirer_is_unavailable(make_adapter: AdapterFactory) -> None:
    card_adapter, _ = await make_adapter(free_port(), connect_timeout=0.2)
    with pytest.raises(UpstreamUnavailableError):
        await card_adapter.authorize(auth("u-1", testcards.APPROVE))
    assert (await card_adapter.inquire(inquire("u-1"))).status is OperationStatus.NOT_FOUND


# A merchant id of ASCII that DE42 (printable ASCII) does not take: the config takes it, and
# every financial message carrying it fails only when the client encodes it. Sign-on and echo
# (0800) do not carry DE42, so the connection comes up.
UNENCODABLE_MERCHANT = "MERCHANT\x01"


async def test_a_message_that_cannot_be_encoded_was_never_sent_even_after_a_restart(
    simulator: RunningSimulator, make_adapter: AdapterFactory
) -> None:
    card_adapter, _ = await make_adapter(simulator.port, merchant_id=UNENCODABLE_MERCHANT)
    with pytest.raises(InvalidRequestError, match="field 42"):
        await card_adapter.authorize(auth("enc-1", testcards.APPROVE))
    assert (await card_adapter.inquire(inquire("enc-1"))).status is OperationStatus.NOT_FOUND
    await card_adapter.stop()
    restarted, events = await make_adapter(simulator.port)
    assert (await restarted.inquire(inquire("enc-1"))).status is OperationStatus.NOT_FOUND
    # Nothing to reverse: the reference is free, and sent for the first time now.
    assert (await restarted.authorize(auth("enc-1", testcards.APPROVE))).status is APPROVED
    assert simulator.host.seen.count("0100") == 1
    assert not {"0400", "0420", "0421"} & set(simulator.host.seen)
    assert events.received == []


async def test_follow_ups_that_cannot_be_encoded_leave_their_authorizations_as_they_were(
    simulator: RunningSimulator, make_adapter: AdapterFactory, tmp_path: Path
) -> None:
    first, _ = await make_adapter(simulator.port)
    to_capture = await first.authorize(auth("a-enc", testcards.APPROVE, 1000))
    to_void = await first.authorize(auth("a-enc2", testcards.APPROVE, 700))
    assert to_capture.status is to_void.status is APPROVED
    await first.stop()
    # Restarted with a merchant id the follow-ups' DE42 does not take.
    card_adapter, _ = await make_adapter(simulator.port, merchant_id=UNENCODABLE_MERCHANT)
    with pytest.raises(InvalidRequestError, match="field 42"):
        await card_adapter.capture(capture("c-enc", "a-enc", 1000, 1000))
    with pytest.raises(InvalidRequestError, match="field 42"):
        await card_adapter.void(void("v-enc", "a-enc2", 700))
    for ref in ("c-enc", "v-enc"):
        assert (await card_adapter.inquire(inquire(ref))).status is OperationStatus.NOT_FOUND
    await card_adapter.stop()
    fixed, _ = await make_adapter(simulator.port)  # the operator fixed the merchant id
    for ref in ("c-enc", "v-enc"):
        assert (await fixed.inquire(inquire(ref))).status is OperationStatus.NOT_FOUND
    assert (await fixed.capture(capture("c-enc", "a-enc", 1000, 1000))).status is APPROVED
    assert (await fixed.void(void("v-enc", "a-enc2", 700))).status is APPROVED
    host = tmp_path / "host.jsonl"
    assert host_record(host, to_capture.upstream_reference).captured == 1000
    assert host_record(host, to_void.upstream_reference).reversed
    assert [t for t in simulator.host.seen if t not in ("0100", "0800")] == ["0220", "0400"]


# Digits to str.isdigit() that no numeric ISO 8583 field carries.
NOT_ASCII_DIGITS = ["\u0660" * 11, "\u00b2", "\uff11" * 11]


@pytest.mark.parametrize("acquirer_id", NOT_ASCII_DIGITS)
def test_an_acquirer_id_of_other_digits_is_refused_at_start(
    tmp_path: Path, acquirer_id: str
) -> None:
    with pytest.raises(ValueError, match="acquirer_id"):
        card_config(tmp_path, free_port(), acquirer_id=acquirer_id)


async def test_a_card_number_of_other_digits_is_refused_naming_the_field_and_never_sent(
    simulator: RunningSimulator, adapter: Adapter
) -> None:
    card_adapter, _ = adapter
    fullwidth = {ord(d): ord(d) + 0xFEE0 for d in "0123456789"}  # 4 -> U+FF14, and so on
    arabic_indic = {ord(d): ord(d) - ord("0") + 0x0660 for d in "0123456789"}
    for n, digits in enumerate((fullwidth, arabic_indic)):
        number = testcards.APPROVE.translate(digits)
        with pytest.raises(InvalidRequestError) as refused:
            await card_adapter.authorize(auth(f"odd-{n}", number))
        assert [f for f, _ in refused.value.violations] == ["payment_method.card.number"]
    assert "0100" not in simulator.host.seen


async def test_the_journal_stays_owner_only_after_compaction(
    make_adapter: AdapterFactory, simulator: RunningSimulator, tmp_path: Path
) -> None:
    journal = tmp_path / "card-saf.jsonl"
    first, _ = await make_adapter(simulator.port)
    assert (await first.authorize(auth("mode-1", testcards.APPROVE))).status is APPROVED
    await first.stop()
    # A compaction file an earlier crash left behind, readable by anyone.
    stale = journal.with_name(journal.name + ".tmp")
    stale.write_text("")
    stale.chmod(0o644)
    restarted, _ = await make_adapter(simulator.port)  # compacts the journal at start
    assert (journal.stat().st_mode & 0o777) == 0o600
    assert (await restarted.inquire(inquire("mode-1"))).status is APPROVED


async def test_capabilities_describe_the_channel(adapter: Adapter) -> None:
    caps = adapter[0].capabilities()
    assert caps.name == "card" and caps.payment_methods == frozenset({PaymentMethodType.CARD})
    assert {"USD", "CNY", "JPY", "EUR", "GBP"} <= caps.currencies
    assert caps.max_amount_minor == 999_999_999_999


async def test_the_conformance_counter_sees_a_reference_charged_again_under_a_new_stan(
    simulator: RunningSimulator, make_adapter: AdapterFactory, tmp_path: Path
) -> None:
    counter = HostStateCounter(str(tmp_path / "host.jsonl"))
    assert await counter.carried_out(OperationType.AUTHORIZE) == 0
    card_adapter, _ = await make_adapter(simulator.port)
    # A second terminal that never saw the first one's records sends the same reference.
    forgetful, _ = await make_adapter(
        simulator.port, terminal_id="TERM0002", saf_file=tmp_path / "other.jsonl"
    )
    for sender in (card_adapter, forgetful):
        assert (await sender.authorize(auth("twice", testcards.APPROVE))).status is APPROVED
    assert await counter.carried_out(OperationType.AUTHORIZE) == 2
    assert (await card_adapter.capture(capture("c-1", "twice", 1000, 1000))).status is APPROVED
    assert (await card_adapter.refund(refund("r-1", "twice", 400, 1000))).status is APPROVED
    counts = [await counter.carried_out(op) for op in (OperationType.CAPTURE, OperationType.REFUND)]
    assert counts == [1, 1]
