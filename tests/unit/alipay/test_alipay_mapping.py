"""Alipay mapping: exact yuan conversion, result codes, trade statuses and decline tables."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.alipay import mapping
from adapters.sdk.errors import InvalidRequestError
from adapters.sdk.types import DeclineCode, Money, OperationStatus, OperationType

APPROVED, DECLINED = OperationStatus.APPROVED, OperationStatus.DECLINED
PENDING, NOT_FOUND = OperationStatus.PENDING, OperationStatus.NOT_FOUND


@pytest.mark.parametrize(
    ("fen", "yuan"),
    [(1, "0.01"), (10, "0.10"), (100, "1.00"), (8888, "88.88"), (123456789, "1234567.89"),
     (mapping.MAX_FEN, "100000000.00")],
)  # fmt: skip
def test_yuan_conversion_is_exact_both_ways(fen: int, yuan: str) -> None:
    assert mapping.to_yuan(Money(fen, "CNY")) == yuan
    assert mapping.from_yuan(yuan) == fen


def test_every_amount_survives_the_round_trip() -> None:
    # Floats would drift somewhere in here (0.29 * 100 is 28.999999999999996).
    for fen in [*range(1, 2001), 29, 10**9 + 7, mapping.MAX_FEN - 1]:
        assert mapping.from_yuan(mapping.to_yuan(Money(fen, "CNY"))) == fen


@pytest.mark.parametrize(("text", "fen"), [("88.8", 8880), ("88", 8800), ("0", 0), ("0.5", 50)])
def test_platform_amounts_with_fewer_decimals(text: str, fen: int) -> None:
    assert mapping.from_yuan(text) == fen


@pytest.mark.parametrize(
    "text", ["1.234", "-1.00", "1e3", " 1.00", "01.00", "1.", ".5", "", "NaN", "1,00"]
)
def test_malformed_platform_amounts_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        mapping.from_yuan(text)


@pytest.mark.parametrize(
    ("money", "field"),
    [
        (Money(100, "USD"), "amount.currency"),
        (Money(0, "CNY"), "amount.amount_minor"),
        (Money(-5, "CNY"), "amount.amount_minor"),
        (Money(mapping.MAX_FEN + 1, "CNY"), "amount.amount_minor"),
    ],
)
def test_amounts_the_platform_cannot_take_are_refused(money: Money, field: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        mapping.to_yuan(money)
    assert caught.value.violations[0][0] == field


def test_pay_success_is_approved_with_the_platform_amount() -> None:
    result = mapping.pay_result({"code": "10000", "trade_no": "T1", "total_amount": "88.88"})
    assert result is not None
    assert (result.status, result.upstream_reference, result.approved_amount) == (
        APPROVED,
        "T1",
        Money(8888, "CNY"),
    )


def test_buyer_still_confirming_is_pending() -> None:
    result = mapping.pay_result({"code": "10003", "msg": "order success pay inprocess"})
    assert result is not None and result.status is PENDING and result.raw_code == "10003"


@pytest.mark.parametrize(("sub_code", "decline"), sorted(mapping.PAY_DECLINES.items()))
def test_pay_business_failures_map_to_declines(sub_code: str, decline: DeclineCode) -> None:
    result = mapping.pay_result({"code": "40004", "sub_code": sub_code, "sub_msg": "x"})
    assert result is not None
    assert (result.status, result.decline_code, result.raw_code) == (DECLINED, decline, sub_code)


@pytest.mark.parametrize(
    "body",
    [
        {"code": "20000", "sub_code": "isp.unknow-error"},
        {"code": "40004", "sub_code": "ACQ.SYSTEM_ERROR"},
        {"code": "40004", "sub_code": "ACQ.TRADE_HAS_SUCCESS"},
        {"code": "40004", "sub_code": "ACQ.SOMETHING_NEW"},
        {"code": "99999"},
        {},
    ],
)
def test_pay_answers_that_are_not_final_call_for_a_query(body: dict[str, Any]) -> None:
    assert mapping.pay_result(body) is None


@pytest.mark.parametrize(
    ("status", "extra", "expected", "decline"),
    [
        ("TRADE_SUCCESS", {}, APPROVED, None),
        ("TRADE_FINISHED", {}, APPROVED, None),
        ("TRADE_CLOSED", {"send_pay_date": "2024-01-01 10:00:00"}, APPROVED, None),
        ("TRADE_CLOSED", {}, DECLINED, DeclineCode.BUYER_CANCELLED),
        ("WAIT_BUYER_PAY", {}, PENDING, None),
        ("SOMETHING_NEW", {}, PENDING, None),
    ],
)
def test_trade_statuses_for_a_payment(
    status: str, extra: dict[str, str], expected: OperationStatus, decline: DeclineCode | None
) -> None:
    body = {
        "code": "10000",
        "trade_status": status,
        "trade_no": "T",
        "total_amount": "1.00",
        **extra,
    }
    result = mapping.trade_result(body, OperationType.AUTHORIZE)
    assert (result.status, result.decline_code) == (expected, decline)


@pytest.mark.parametrize(
    ("status", "expected"),
    [("TRADE_CLOSED", APPROVED), ("TRADE_FINISHED", DECLINED), ("TRADE_SUCCESS", NOT_FOUND),
     ("WAIT_BUYER_PAY", NOT_FOUND), ("SOMETHING_NEW", PENDING)],
)  # fmt: skip
def test_trade_statuses_for_a_void(status: str, expected: OperationStatus) -> None:
    result = mapping.trade_result({"code": "10000", "trade_status": status}, OperationType.VOID)
    assert result.status is expected


def test_query_of_an_unknown_trade_is_not_found_and_a_failed_query_is_pending() -> None:
    missing = {"code": "40004", "sub_code": "ACQ.TRADE_NOT_EXIST"}
    assert mapping.trade_result(missing, OperationType.AUTHORIZE).status is NOT_FOUND
    for body in ({"code": "20000"}, {"code": "40004", "sub_code": "ACQ.SYSTEM_ERROR"}):
        assert mapping.trade_result(body, OperationType.AUTHORIZE).status is PENDING


def test_cancel_results() -> None:
    assert mapping.cancel_result({"code": "10000", "action": "refund"}).raw_code == "refund"
    declined = mapping.cancel_result({"code": "40004", "sub_code": "ACQ.TRADE_NOT_EXIST"})
    assert declined.decline_code is DeclineCode.INVALID_STATE
    retry = {"code": "40004", "sub_code": "ACQ.TRADE_STATUS_ERROR", "retry_flag": "Y"}
    assert mapping.cancel_result(retry).status is PENDING
    assert (
        mapping.cancel_result({"code": "40004", "sub_code": "ACQ.SYSTEM_ERROR"}).status is PENDING
    )


@pytest.mark.parametrize(("sub_code", "decline"), sorted(mapping.REFUND_DECLINES.items()))
def test_refund_business_failures_map_to_declines(sub_code: str, decline: DeclineCode) -> None:
    result = mapping.refund_result({"code": "40004", "sub_code": sub_code})
    assert (result.status, result.decline_code) == (DECLINED, decline)


def test_refund_success_even_without_fund_change_and_unknown_failures_pending() -> None:
    assert mapping.refund_result({"code": "10000", "fund_change": "N"}).status is APPROVED
    assert (
        mapping.refund_result({"code": "40004", "sub_code": "ACQ.SYSTEM_ERROR"}).status is PENDING
    )
    assert mapping.refund_result({"code": "20000"}).status is PENDING


def test_refund_query_results() -> None:
    found = {"code": "10000", "refund_amount": "10.00", "refund_status": "REFUND_SUCCESS"}
    result = mapping.refund_query_result(found)
    assert (result.status, result.approved_amount) == (APPROVED, Money(1000, "CNY"))
    assert mapping.refund_query_result({"code": "10000"}).status is NOT_FOUND
    assert mapping.refund_query_result({**found, "refund_status": "PROCESSING"}).status is PENDING
    assert mapping.refund_query_result({"code": "20000"}).status is PENDING


def test_amounts_carry_the_currency_the_platform_names() -> None:
    paid = {"code": "10000", "trade_status": "TRADE_SUCCESS", "total_amount": "1.00"}
    assert mapping.trade_result(paid, OperationType.AUTHORIZE).approved_amount == Money(100, "CNY")
    abroad = paid | {"trans_currency": "USD"}
    assert mapping.trade_result(abroad, OperationType.AUTHORIZE).approved_amount == Money(
        100, "USD"
    )
