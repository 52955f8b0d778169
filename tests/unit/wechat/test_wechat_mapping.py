"""WeChat Pay mapping: fen amounts, order numbers, trade_state, refund status and error tables."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.sdk.errors import InvalidRequestError
from adapters.sdk.types import DeclineCode, Money, OperationStatus, OperationType
from adapters.wechat import mapping

APPROVED, DECLINED = OperationStatus.APPROVED, OperationStatus.DECLINED
PENDING, NOT_FOUND = OperationStatus.PENDING, OperationStatus.NOT_FOUND
AUTH, VOID = OperationType.AUTHORIZE, OperationType.VOID


@pytest.mark.parametrize("fen", [1, 99, 8888, mapping.MAX_FEN])
def test_fen_are_sent_as_they_are(fen: int) -> None:
    assert mapping.to_fen(Money(fen, "CNY")) == fen


@pytest.mark.parametrize(
    "money", [Money(1, "USD"), Money(0, "CNY"), Money(mapping.MAX_FEN + 1, "CNY")]
)
def test_amounts_the_platform_cannot_take_are_refused(money: Money) -> None:
    with pytest.raises(InvalidRequestError):
        mapping.to_fen(money)


def test_order_numbers_fit_in_32_characters_and_never_collide_with_references() -> None:
    assert mapping.out_trade_no("a" * 32) == "a" * 32
    long_a, long_b = "x" * 33, "x" * 32 + "y"
    a, b = mapping.out_trade_no(long_a), mapping.out_trade_no(long_b)
    assert len(a) == len(b) == 32 and a != b and a.startswith("*")
    assert mapping.out_trade_no(long_a) == a  # the same reference always names the same order
    # Under WeChat's 6 characters: a digest too, never a number the platform refuses.
    assert mapping.out_trade_no("a" * 6) == "a" * 6
    short = mapping.out_trade_no("abcde")
    assert len(short) == 32 and short.startswith("*") and short != mapping.out_trade_no("abcdf")


def txn(state: str, **extra: Any) -> dict[str, Any]:
    return {"trade_state": state, "transaction_id": "4200T", "amount": {"total": 100}, **extra}


@pytest.mark.parametrize(
    ("state", "extra", "status", "decline"),
    [
        ("SUCCESS", {}, APPROVED, None),
        ("REFUND", {}, APPROVED, None),
        ("REVOKED", {"success_time": "2024-01-01T10:00:00+08:00"}, APPROVED, None),
        ("REVOKED", {}, DECLINED, DeclineCode.BUYER_CANCELLED),
        ("CLOSED", {}, DECLINED, DeclineCode.BUYER_CANCELLED),
        ("PAYERROR", {}, DECLINED, DeclineCode.DO_NOT_HONOR),
        ("USERPAYING", {}, PENDING, None),
        ("NOTPAY", {}, PENDING, None),
        ("ACCEPT", {}, PENDING, None),
        ("", {}, PENDING, None),
    ],
)
def test_trade_states_for_a_payment(
    state: str, extra: dict[str, str], status: OperationStatus, decline: DeclineCode | None
) -> None:
    result = mapping.transaction_result(txn(state, **extra), AUTH)
    assert (result.status, result.decline_code) == (status, decline)


def test_an_approval_carries_the_platform_amount_and_id() -> None:
    result = mapping.transaction_result(txn("SUCCESS"), AUTH)
    assert (result.approved_amount, result.upstream_reference) == (Money(100, "CNY"), "4200T")
    assert (
        mapping.transaction_result(txn("SUCCESS", amount={"total": True}), AUTH).approved_amount
        is None
    )


@pytest.mark.parametrize(
    ("state", "status"),
    [("REVOKED", APPROVED), ("CLOSED", APPROVED), ("REFUND", DECLINED), ("SUCCESS", NOT_FOUND),
     ("USERPAYING", NOT_FOUND), ("WHATEVER", PENDING)],
)  # fmt: skip
def test_trade_states_for_a_void(state: str, status: OperationStatus) -> None:
    assert mapping.transaction_result(txn(state), VOID).status is status


@pytest.mark.parametrize(("code", "decline"), sorted(mapping.PAY_DECLINES.items()))
def test_payment_refusals_map_to_declines(code: str, decline: DeclineCode) -> None:
    result = mapping.pay_error_result({"code": code, "message": "m"})
    assert result is not None and (result.status, result.decline_code, result.raw_code) == (
        DECLINED,
        decline,
        code,
    )


@pytest.mark.parametrize(
    "code", ["SYSTEM_ERROR", "BANKERROR", "ORDERPAID", "USERPAYING", "NEW", ""]
)
def test_payment_errors_that_are_not_final_call_for_a_query(code: str) -> None:
    assert mapping.pay_error_result({"code": code}) is None


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"status": "SUCCESS", "amount": {"refund": 300}}, APPROVED),
        ({"refund_status": "SUCCESS"}, APPROVED),
        ({"status": "CLOSED"}, DECLINED),
        ({"status": "PROCESSING"}, PENDING),
        ({"status": "ABNORMAL"}, PENDING),
        ({}, PENDING),
    ],
)
def test_refund_statuses(body: dict[str, Any], status: OperationStatus) -> None:
    assert mapping.refund_result(body).status is status


def test_refund_and_reverse_errors() -> None:
    for code, decline in mapping.REFUND_DECLINES.items():
        assert mapping.refund_error_result({"code": code}).decline_code is decline
    for code, decline in mapping.REVERSE_DECLINES.items():
        assert mapping.reverse_error_result({"code": code}).decline_code is decline
    assert mapping.refund_error_result({"code": "SYSTEM_ERROR"}).status is PENDING
    assert mapping.reverse_error_result({"code": "SYSTEM_ERROR"}).status is PENDING


def test_amounts_carry_the_currency_the_platform_names() -> None:
    paid = txn("SUCCESS", amount={"total": 100, "currency": "USD"})
    assert mapping.transaction_result(paid, OperationType.AUTHORIZE).approved_amount == Money(
        100, "USD"
    )
    refund = {"status": "SUCCESS", "amount": {"refund": 50, "currency": "CNY"}}
    assert mapping.refund_result(refund).approved_amount == Money(50, "CNY")
