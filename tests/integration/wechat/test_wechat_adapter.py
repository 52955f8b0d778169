"""The WeChat Pay adapter against the simulator process over real HTTP: every flow end to end."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets

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
from tests.integration.alipay.alipaykit import (
    CONFIRM_AFTER_S,
    MERCHANT,
    cny,
    inquire,
    ref,
    refund,
    void,
)
from tests.integration.wechat.conftest import AdapterFactory
from tests.integration.wechat.wechatkit import SimulatorProcess, authorize, code

APPROVED, DECLINED = OperationStatus.APPROVED, OperationStatus.DECLINED
PENDING, NOT_FOUND = OperationStatus.PENDING, OperationStatus.NOT_FOUND
AUTH = OperationType.AUTHORIZE


async def test_approval(make_adapter: AdapterFactory) -> None:
    adapter, _ = await make_adapter()
    r = ref("ok")
    result = await adapter.authorize(authorize(r, code("0000"), 8888))
    assert (result.status, result.raw_code, result.approved_amount) == (
        APPROVED,
        "SUCCESS",
        cny(8888),
    )
    assert result.upstream_reference.startswith("4200")
    assert (await adapter.inquire(inquire(r, AUTH))).status is APPROVED


@pytest.mark.parametrize(
    ("scenario", "decline", "raw"),
    [
        ("1051", DeclineCode.INSUFFICIENT_FUNDS, "NOTENOUGH"),
        ("1014", DeclineCode.INVALID_PAYMENT_CODE, "AUTH_CODE_INVALID"),
        ("1005", DeclineCode.DO_NOT_HONOR, "TRADE_ERROR"),
        ("1061", DeclineCode.EXCEEDS_LIMIT, "RULE_LIMIT"),
        ("1057", DeclineCode.TRANSACTION_NOT_PERMITTED, "NOTSUPORTCARD"),
    ],
)
async def test_declines_are_results_with_the_mapped_code(
    make_adapter: AdapterFactory, scenario: str, decline: DeclineCode, raw: str
) -> None:
    adapter, _ = await make_adapter()
    result = await adapter.authorize(authorize(ref("no"), code(scenario)))
    assert (result.status, result.decline_code, result.raw_code) == (DECLINED, decline, raw)


async def test_partial_refunds_up_to_the_paid_amount(make_adapter: AdapterFactory) -> None:
    adapter, _ = await make_adapter()
    paid, first = ref("pay"), ref("rf1")
    await adapter.authorize(authorize(paid, code("0000"), 10000))
    result = await adapter.refund(refund(first, paid, 3000, 10000))
    assert (result.status, result.approved_amount) == (APPROVED, cny(3000))
    too_much = await adapter.refund(refund(ref("big"), paid, 8000, 10000))
    assert (too_much.status, too_much.raw_code) == (DECLINED, "INVALID_REQUEST")
    assert (await adapter.refund(refund(ref("rf2"), paid, 7000, 10000))).status is APPROVED
    fresh, _ = await make_adapter()  # no memory: it must ask the platform
    found = await fresh.inquire(inquire(first, OperationType.REFUND, paid))
    assert (found.status, found.approved_amount) == (APPROVED, cny(3000))
    assert (await fresh.refund(refund(first, paid, 3000, 10000))).status is APPROVED  # a repeat
    assert (
        await fresh.inquire(inquire(ref("none"), OperationType.REFUND, paid))
    ).status is NOT_FOUND


async def test_void_reverses_a_paid_payment(make_adapter: AdapterFactory) -> None:
    adapter, _ = await make_adapter()
    paid, v = ref("pay"), ref("void")
    await adapter.authorize(authorize(paid, code("0000")))
    assert (await adapter.void(void(v, paid))).status is APPROVED
    fresh, _ = await make_adapter()
    assert (await fresh.inquire(inquire(v, OperationType.VOID, paid))).status is APPROVED
    # It was paid before it was reversed: the authorization did happen.
    assert (await fresh.inquire(inquire(paid, AUTH))).status is APPROVED


async def test_void_of_an_unconfirmed_payment_stops_the_buyer(make_adapter: AdapterFactory) -> None:
    adapter, events = await make_adapter(poll_interval_s=0)
    waiting = ref("wait")
    assert (await adapter.authorize(authorize(waiting, code("2001")))).status is PENDING
    assert (await adapter.void(void(ref("void"), waiting))).status is APPROVED
    await asyncio.sleep(0.8)  # past the moment the buyer would have paid
    closed = await adapter.inquire(inquire(waiting, AUTH))
    assert (closed.status, closed.decline_code) == (DECLINED, DeclineCode.BUYER_CANCELLED)
    assert not events.about(waiting)


async def test_system_error_is_settled_by_a_query(make_adapter: AdapterFactory) -> None:
    adapter, _ = await make_adapter()
    result = await adapter.authorize(authorize(ref("se"), code("2003")))
    assert (result.status, result.raw_code) == (APPROVED, "SUCCESS")


async def test_a_payment_whose_confirming_query_is_refused_is_pending_never_not_sent(
    make_adapter: AdapterFactory, simulator: SimulatorProcess
) -> None:
    # 2009: paid, answered 500 SYSTEM_ERROR, and the order's query is refused (403
    # NO_AUTH_MCH) for a while. The payment left: "not sent" would let the switch pay elsewhere.
    adapter, _ = await make_adapter(poll_interval_s=0)
    r, auth_code = ref("unq"), code("2009")
    before = await simulator.stats()
    first = await adapter.authorize(authorize(r, auth_code))
    assert (first.status, first.raw_code) == (PENDING, "SENT_NOT_CONFIRMED")
    # (Its notification may settle it meanwhile: the switch asks, it is not paid again.)
    await asyncio.sleep(CONFIRM_AFTER_S + 0.2)  # the platform takes the query again
    assert (await adapter.inquire(inquire(r, AUTH))).status is APPROVED
    assert (await adapter.authorize(authorize(r, auth_code))).status is APPROVED
    assert (await simulator.stats())["pay_requests"] - before["pay_requests"] == 1


async def test_userpaying_that_fails_is_settled_by_polling(make_adapter: AdapterFactory) -> None:
    adapter, events = await make_adapter()
    r = ref("fail")
    assert (await adapter.authorize(authorize(r, code("2002")))).status is PENDING
    event = await events.settled(r)
    assert (event.result.status, event.result.raw_code) == (DECLINED, "PAYERROR")


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
    assert (await simulator.stats())["pay_requests"] - before["pay_requests"] == 1


async def test_repeats_with_the_same_reference_are_not_charged_twice(
    make_adapter: AdapterFactory, simulator: SimulatorProcess
) -> None:
    adapter, _ = await make_adapter()
    r, auth_code = ref("rep"), code("0000")
    before = await simulator.stats()
    results = await asyncio.gather(*(adapter.authorize(authorize(r, auth_code)) for _ in range(5)))
    assert {x.status for x in results} == {APPROVED}
    restarted, _ = await make_adapter()
    again = await restarted.authorize(authorize(r, auth_code))  # ORDERPAID -> query
    assert (again.status, again.upstream_reference) == (APPROVED, results[0].upstream_reference)
    after = await simulator.stats()
    assert (after["orders"] - before["orders"], after["pay_requests"] - before["pay_requests"]) == (
        1,
        2,
    )


async def test_a_reference_longer_than_an_order_number_round_trips(
    make_adapter: AdapterFactory,
) -> None:
    adapter, events = await make_adapter(poll_interval_s=0)
    long_ref = "L" * 40 + ref("x")
    assert (await adapter.authorize(authorize(long_ref, code("2001")))).status is PENDING
    event = await events.settled(long_ref)  # the notification names it through `attach`
    assert event.result.status is APPROVED
    fresh, _ = await make_adapter()
    assert (await fresh.inquire(inquire(long_ref, AUTH))).status is APPROVED


async def test_a_reference_shorter_than_an_order_number_is_paid_not_declined(
    make_adapter: AdapterFactory,
) -> None:
    # The Channel contract takes references of 1 to 64 characters; WeChat's out_trade_no is 6
    # to 32, and a shorter one was refused by the platform (PARAM_ERROR) and answered DECLINED.
    adapter, events = await make_adapter(poll_interval_s=0)
    short = "s" + secrets.token_hex(2)
    assert (await adapter.authorize(authorize(short, code("2001"), 5000))).status is PENDING
    event = await events.settled(short)  # the notification names it through `attach`
    assert event.result.status is APPROVED
    refunded = await adapter.refund(refund(ref("rf"), short, 2000, 5000))
    assert (refunded.status, refunded.approved_amount) == (APPROVED, cny(2000))
    fresh, _ = await make_adapter()
    assert (await fresh.inquire(inquire(short, AUTH))).status is APPROVED


async def test_a_payment_or_refund_the_platform_shows_for_another_amount_is_held_not_approved(
    make_adapter: AdapterFactory, simulator: SimulatorProcess
) -> None:
    # 2008: the platform takes 1 fen less than asked (order and refunds), answers SYSTEM_ERROR,
    # and notifies the short amount. Neither the asked amount's success nor a decline is true.
    adapter, events = await make_adapter(poll_interval_s=0)
    paid, rf = ref("short"), ref("rf")
    result = await adapter.authorize(authorize(paid, code("2008"), 10000))
    assert (result.status, result.raw_code) == (PENDING, "AMOUNT_MISMATCH")
    assert "9999 CNY" in result.message and "10000 CNY" in result.message
    found = await adapter.inquire(InquireRequest(paid, MERCHANT, AUTH, "", cny(10000)))
    assert (found.status, found.raw_code) == (PENDING, "AMOUNT_MISMATCH")
    assert (await simulator.redeliver(paid))["status"] == 204  # acknowledged, not believed
    refunded = await adapter.refund(refund(rf, paid, 3000, 10000))
    assert (refunded.status, refunded.raw_code) == (PENDING, "AMOUNT_MISMATCH")
    assert (await simulator.redeliver(rf))["status"] == 204
    asked = InquireRequest(rf, MERCHANT, OperationType.REFUND, paid, cny(3000))
    assert (await adapter.inquire(asked)).raw_code == "AMOUNT_MISMATCH"
    assert not events.about(paid) and not events.about(rf)


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
        await adapter.authorize(authorize(ref("k"), code("0000"), kind=PaymentMethodType.ALIPAY))
    for amount in (Money(100, "USD"), cny(0)):
        request = dataclasses.replace(authorize(ref("amt"), code("0000")), amount=amount)
        with pytest.raises(InvalidRequestError):
            await adapter.authorize(request)
    assert (await simulator.stats())["requests"] == before["requests"]
    assert (await adapter.inquire(inquire(ref("never"), AUTH))).status is NOT_FOUND


async def test_connections_are_kept_alive_and_reused(make_adapter: AdapterFactory) -> None:
    adapter, _ = await make_adapter(max_connections=3)
    for _ in range(10):
        await adapter.authorize(authorize(ref("seq"), code("0000")))
    assert adapter.connections_opened == 1
    await asyncio.gather(
        *(adapter.authorize(authorize(ref("par"), code("0000"))) for _ in range(12))
    )
    assert adapter.connections_opened <= 3
