"""The Alipay adapter against the simulator process over real HTTP: every flow end to end."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from adapters.sdk.errors import InvalidRequestError, NotSupportedError, UpstreamTimeoutError
from adapters.sdk.types import (
    CaptureRequest,
    DeclineCode,
    InquireRequest,
    Money,
    OperationStatus,
    OperationType,
    PaymentMethodType,
)
from adapters.walletkit.wallet import Tuning
from tests.integration.alipay.alipaykit import (
    CONFIRM_AFTER_S,
    MERCHANT,
    SimulatorProcess,
    authorize,
    cny,
    code,
    inquire,
    ref,
    refund,
    void,
)
from tests.integration.alipay.conftest import AdapterFactory

APPROVED, DECLINED = OperationStatus.APPROVED, OperationStatus.DECLINED
PENDING, NOT_FOUND = OperationStatus.PENDING, OperationStatus.NOT_FOUND
AUTH = OperationType.AUTHORIZE


async def test_approval(make_adapter: AdapterFactory) -> None:
    adapter, _ = await make_adapter()
    r = ref("ok")
    result = await adapter.authorize(authorize(r, code("0000"), 8888))
    assert result.status is APPROVED
    assert result.approved_amount == cny(8888)
    assert result.upstream_reference.startswith("20")
    assert (await adapter.inquire(inquire(r, AUTH))).status is APPROVED


@pytest.mark.parametrize(
    ("scenario", "decline", "raw"),
    [
        ("1051", DeclineCode.INSUFFICIENT_FUNDS, "ACQ.BUYER_BALANCE_NOT_ENOUGH"),
        ("1014", DeclineCode.INVALID_PAYMENT_CODE, "ACQ.PAYMENT_AUTH_CODE_INVALID"),
        ("1005", DeclineCode.DO_NOT_HONOR, "ACQ.PAYMENT_FAIL"),
        ("1061", DeclineCode.EXCEEDS_LIMIT, "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR"),
        ("1057", DeclineCode.TRANSACTION_NOT_PERMITTED, "ACQ.BUYER_ENABLE_STATUS_FORBID"),
    ],
)
async def test_declines_are_results_with_the_mapped_code(
    make_adapter: AdapterFactory, scenario: str, decline: DeclineCode, raw: str
) -> None:
    adapter, _ = await make_adapter()
    result = await adapter.authorize(authorize(ref("no"), code(scenario)))
    assert (result.status, result.decline_code, result.raw_code) == (DECLINED, decline, raw)


async def test_partial_refunds_up_to_the_captured_amount(make_adapter: AdapterFactory) -> None:
    adapter, _ = await make_adapter()
    paid = ref("pay")
    assert (await adapter.authorize(authorize(paid, code("0000"), 10000))).status is APPROVED
    first, second = ref("rf1"), ref("rf2")
    assert (await adapter.refund(refund(first, paid, 3000, 10000))).status is APPROVED
    too_much = await adapter.refund(refund(ref("rf-big"), paid, 8000, 10000))
    assert (too_much.status, too_much.decline_code) == (DECLINED, DeclineCode.INVALID_AMOUNT)
    assert (await adapter.refund(refund(second, paid, 7000, 10000))).status is APPROVED
    fresh, _ = await make_adapter()  # no memory: it must ask the platform
    found = await fresh.inquire(inquire(first, OperationType.REFUND, paid))
    assert (found.status, found.approved_amount) == (APPROVED, cny(3000))
    # Fully refunded: the trade is closed, and nothing more can be refunded.
    after = await adapter.refund(refund(ref("rf3"), paid, 1, 10000))
    assert (after.status, after.decline_code) == (DECLINED, DeclineCode.INVALID_STATE)


async def test_refund_repeated_by_a_restarted_adapter_refunds_once(
    make_adapter: AdapterFactory,
) -> None:
    adapter, _ = await make_adapter()
    paid, rf = ref("pay"), ref("rf")
    await adapter.authorize(authorize(paid, code("0000"), 5000))
    assert (await adapter.refund(refund(rf, paid, 3000, 5000))).status is APPROVED
    fresh, _ = await make_adapter()  # no memory of the first refund
    # A second 3000 would exceed the 5000 paid: approval means the platform saw a repeat.
    assert (await fresh.refund(refund(rf, paid, 3000, 5000))).status is APPROVED
    assert (await fresh.refund(refund(ref("rf2"), paid, 2000, 5000))).status is APPROVED
    closed = await fresh.refund(refund(ref("rf3"), paid, 1, 5000))
    assert (closed.status, closed.decline_code) == (DECLINED, DeclineCode.INVALID_STATE)


async def test_a_payment_or_refund_the_platform_shows_for_another_amount_is_held_not_approved(
    make_adapter: AdapterFactory,
) -> None:
    # 2008: the platform takes 1 fen less than asked (trade and refunds) and answers 20000, so
    # only a query tells. Neither the asked amount's success nor a decline is true.
    adapter, events = await make_adapter()
    paid, rf = ref("short"), ref("rf")
    result = await adapter.authorize(authorize(paid, code("2008"), 10000))
    assert (result.status, result.raw_code) == (PENDING, "AMOUNT_MISMATCH")
    assert "9999 CNY" in result.message and "10000 CNY" in result.message
    asked = InquireRequest(paid, MERCHANT, OperationType.AUTHORIZE, "", cny(10000))
    found = await adapter.inquire(asked)
    assert (found.status, found.raw_code) == (PENDING, "AMOUNT_MISMATCH")
    refunded = await adapter.refund(refund(rf, paid, 3000, 10000))
    assert (refunded.status, refunded.raw_code) == (PENDING, "AMOUNT_MISMATCH")
    fresh, _ = await make_adapter()
    asked = InquireRequest(rf, MERCHANT, OperationType.REFUND, paid, cny(3000))
    assert (await fresh.inquire(asked)).raw_code == "AMOUNT_MISMATCH"
    assert not events.about(paid) and not events.about(rf)


async def test_a_refund_answered_as_made_stays_pending_past_the_window_until_its_query_shows_it(
    make_adapter: AdapterFactory,
) -> None:
    # 3006: the refund is made and answered as made, but its query shows it only REFUND_LAG_S
    # later, longer than this adapter polls. Money was returned: never NOT_FOUND (FAILED).
    adapter, events = await make_adapter(
        tuning=Tuning(timeout_s=2.0, poll_interval_s=0.2, poll_for_s=1.0)
    )
    paid, rf = ref("pay"), ref("rf")
    assert (await adapter.authorize(authorize(paid, code("3006"), 10000))).status is APPROVED
    made = await adapter.refund(refund(rf, paid, 3000, 10000))
    assert made.status is PENDING, made
    await asyncio.sleep(1.2)  # past the polling window, the query still lagging
    asked = InquireRequest(rf, MERCHANT, OperationType.REFUND, paid, cny(3000))
    late = await adapter.inquire(asked)
    assert (late.status, late.raw_code) == (PENDING, "MADE_NOT_SHOWN"), late
    assert "reconcile with Alipay" in late.message
    # Once the query shows it, it is the refund asked for.
    for _ in range(50):  # the query shows it REFUND_LAG_S after the refund
        if (found := await adapter.inquire(asked)).status is not PENDING:
            break
        await asyncio.sleep(0.2)
    assert (found.status, found.approved_amount) == (APPROVED, cny(3000))
    assert (await adapter.refund(refund(rf, paid, 3000, 10000))).status is APPROVED
    assert not events.about(rf)  # past the window it was left to the switch's Inquire


async def test_void_of_a_paid_payment_cancels_it(make_adapter: AdapterFactory) -> None:
    adapter, _ = await make_adapter()
    paid, v = ref("pay"), ref("void")
    await adapter.authorize(authorize(paid, code("0000")))
    result = await adapter.void(void(v, paid))
    assert (result.status, result.raw_code) == (APPROVED, "refund")
    assert (await adapter.inquire(inquire(v, OperationType.VOID, paid))).status is APPROVED
    assert (await adapter.void(void(ref("void2"), paid))).status is APPROVED  # repeatable


async def test_void_of_a_payment_the_buyer_has_not_confirmed_closes_it(
    make_adapter: AdapterFactory,
) -> None:
    adapter, _ = await make_adapter(poll_interval_s=0)
    waiting = ref("wait")
    assert (await adapter.authorize(authorize(waiting, code("2001")))).status is PENDING
    result = await adapter.void(void(ref("void"), waiting))
    assert (result.status, result.raw_code) == (APPROVED, "close")
    await asyncio.sleep(0.8)  # past the moment the buyer would have confirmed
    closed = await adapter.inquire(inquire(waiting, AUTH))
    assert (closed.status, closed.decline_code) == (DECLINED, DeclineCode.BUYER_CANCELLED)


async def test_unknown_outcome_20000_is_settled_by_a_query(make_adapter: AdapterFactory) -> None:
    adapter, _ = await make_adapter()
    result = await adapter.authorize(authorize(ref("u"), code("2003")))
    assert (result.status, result.raw_code) == (APPROVED, "TRADE_SUCCESS")


async def test_system_error_is_settled_by_a_query(make_adapter: AdapterFactory) -> None:
    adapter, _ = await make_adapter()
    result = await adapter.authorize(authorize(ref("se"), code("2006")))
    assert result.status is APPROVED


async def test_a_system_error_with_no_trade_yet_is_pending_until_the_polling_window_ends(
    make_adapter: AdapterFactory,
) -> None:
    adapter, _ = await make_adapter(tuning=Tuning(timeout_s=2.0, poll_for_s=1.0))
    r = ref("se-none")
    # ACQ.SYSTEM_ERROR says nothing certain, and a trade may still appear: not a decline.
    first = await adapter.authorize(authorize(r, code("2007")))
    assert (first.status, first.raw_code) == (PENDING, "ACQ.SYSTEM_ERROR")
    assert (await adapter.inquire(inquire(r, AUTH))).status is PENDING
    await asyncio.sleep(1.2)  # past the polling window, no trade: never taken
    assert (await adapter.inquire(inquire(r, AUTH))).status is NOT_FOUND


async def test_a_payment_whose_confirming_query_is_refused_is_pending_never_not_sent(
    make_adapter: AdapterFactory, simulator: SimulatorProcess
) -> None:
    # 2009: paid, answered 20000, and the gateway refuses the trade's query (20001) for a
    # while. The payment left: "not sent" (UNAVAILABLE) would let the switch pay elsewhere.
    adapter, _ = await make_adapter(poll_interval_s=0)
    r, auth_code = ref("unq"), code("2009")
    before = await simulator.stats()
    first = await adapter.authorize(authorize(r, auth_code))
    assert (first.status, first.raw_code) == (PENDING, "SENT_NOT_CONFIRMED")
    # Still open: a repeat asks (refused again: PENDING), it does not pay again.
    assert (await adapter.authorize(authorize(r, auth_code))).status is PENDING
    await asyncio.sleep(CONFIRM_AFTER_S + 0.2)  # the gateway takes the query again
    assert (await adapter.inquire(inquire(r, AUTH))).status is APPROVED
    assert (await adapter.authorize(authorize(r, auth_code))).status is APPROVED
    after = await simulator.stats()
    assert after["pay_requests"] - before["pay_requests"] == 1


@pytest.mark.parametrize(
    ("scenario", "final"), [("2001", APPROVED), ("2004", APPROVED), ("2002", DECLINED)]
)
async def test_slow_buyer_is_pending_then_settled_and_announced(
    make_adapter: AdapterFactory, scenario: str, final: OperationStatus
) -> None:
    adapter, events = await make_adapter()
    r = ref("slow")
    assert (await adapter.authorize(authorize(r, code(scenario)))).status is PENDING
    assert (await events.settled(r)).result.status is final
    assert (await adapter.inquire(inquire(r, AUTH))).status is final
    assert (await adapter.authorize(authorize(r, code(scenario)))).status is final


async def test_timeout_is_resolved_by_inquire_and_a_repeat_does_not_pay_twice(
    make_adapter: AdapterFactory, simulator: SimulatorProcess
) -> None:
    adapter, _ = await make_adapter(timeout_s=0.5, poll_interval_s=0)
    r, auth_code = ref("hang"), code("2005")
    before = await simulator.stats()
    with pytest.raises(UpstreamTimeoutError):
        await adapter.authorize(authorize(r, auth_code))
    assert (await adapter.inquire(inquire(r, AUTH))).status is APPROVED
    assert (await adapter.authorize(authorize(r, auth_code))).status is APPROVED
    after = await simulator.stats()
    assert after["pay_requests"] - before["pay_requests"] == 1


async def test_repeats_with_the_same_reference_are_not_charged_twice(
    make_adapter: AdapterFactory, simulator: SimulatorProcess
) -> None:
    adapter, _ = await make_adapter()
    r, auth_code = ref("rep"), code("0000")
    before = await simulator.stats()
    results = await asyncio.gather(*(adapter.authorize(authorize(r, auth_code)) for _ in range(5)))
    assert {x.status for x in results} == {APPROVED} and len(
        {x.upstream_reference for x in results}
    ) == 1
    restarted, _ = await make_adapter()
    again = await restarted.authorize(authorize(r, auth_code))  # ACQ.TRADE_HAS_SUCCESS -> query
    assert (again.status, again.upstream_reference) == (APPROVED, results[0].upstream_reference)
    after = await simulator.stats()
    assert after["trades"] - before["trades"] == 1
    assert after["pay_requests"] - before["pay_requests"] == 2


async def test_what_the_channel_cannot_do_is_refused_before_sending(
    make_adapter: AdapterFactory, simulator: SimulatorProcess
) -> None:
    adapter, _ = await make_adapter()
    before = await simulator.stats()
    with pytest.raises(NotSupportedError):
        await adapter.authorize(authorize(ref("m"), code("0000"), capture=False))
    with pytest.raises(NotSupportedError):
        await adapter.capture(CaptureRequest("c", MERCHANT, "o", "", cny(1), cny(1)))
    with pytest.raises(InvalidRequestError):
        await adapter.authorize(
            authorize(ref("k"), code("0000"), kind=PaymentMethodType.WECHAT_PAY)
        )
    for amount in (Money(100, "USD"), cny(0)):
        request = dataclasses.replace(authorize(ref("amt"), code("0000")), amount=amount)
        with pytest.raises(InvalidRequestError):
            await adapter.authorize(request)
    assert (await simulator.stats())["requests"] == before["requests"]
    assert (await adapter.inquire(inquire(ref("never"), AUTH))).status is NOT_FOUND


async def test_connections_are_kept_alive_and_reused(
    make_adapter: AdapterFactory, simulator: SimulatorProcess
) -> None:
    adapter, _ = await make_adapter(max_connections=3)
    before = await simulator.stats()
    for _ in range(10):
        await adapter.authorize(authorize(ref("seq"), code("0000")))
    assert adapter.connections_opened == 1
    await asyncio.gather(
        *(adapter.authorize(authorize(ref("par"), code("0000"))) for _ in range(12))
    )
    assert adapter.connections_opened <= 3
    after = await simulator.stats()
    # The simulator saw the adapter's connections, and the one this stats call came on.
    assert after["connections"] - before["connections"] == adapter.connections_opened + 1
