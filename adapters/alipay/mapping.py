"""Alipay <-> canonical: yuan amounts, result codes, trade statuses and sub_code decline tables.

Every function here is pure: it takes the business object of a verified answer and says what
it means. Only what is explicitly final becomes APPROVED or DECLINED; everything else is
PENDING (or, for a payment, "ask with a query"), so an unknown code is never taken as money.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from adapters.sdk.types import DeclineCode, Money, OperationResult, OperationStatus, OperationType
from adapters.walletkit.wallet import CNY, MAX_AMOUNT_FEN, check_amount

CURRENCY = CNY
MAX_FEN = MAX_AMOUNT_FEN

SUCCESS = "10000"
WAITING = "10003"
UNKNOWN = "20000"
BUSINESS_FAILED = "40004"
# Gateway refusals: the request was not executed (bad token, missing or invalid arguments,
# including our signature, no permission).
GATEWAY_REFUSALS = frozenset({"20001", "40001", "40002", "40006"})
INVALID_SIGNATURE = "isv.invalid-signature"

TRADE_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"

# alipay.trade.pay business failures that certainly declined the payment.
PAY_DECLINES: Mapping[str, DeclineCode] = {
    "ACQ.BUYER_BALANCE_NOT_ENOUGH": DeclineCode.INSUFFICIENT_FUNDS,
    "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH": DeclineCode.INSUFFICIENT_FUNDS,
    "ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE": DeclineCode.INSUFFICIENT_FUNDS,
    "ACQ.PAYMENT_AUTH_CODE_INVALID": DeclineCode.INVALID_PAYMENT_CODE,
    "ACQ.PAYMENT_FAIL": DeclineCode.DO_NOT_HONOR,
    "ACQ.PAYMENT_REQUEST_HAS_RISK": DeclineCode.DO_NOT_HONOR,
    "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR": DeclineCode.EXCEEDS_LIMIT,
    "ACQ.BUYER_PAYMENT_AMOUNT_MONTH_LIMIT_ERROR": DeclineCode.EXCEEDS_LIMIT,
    "ACQ.BEYOND_PAY_RESTRICTION": DeclineCode.EXCEEDS_LIMIT,
    "ACQ.BEYOND_PER_RECEIPT_RESTRICTION": DeclineCode.EXCEEDS_LIMIT,
    "ACQ.TOTAL_FEE_EXCEED": DeclineCode.INVALID_AMOUNT,
    "ACQ.BUYER_ENABLE_STATUS_FORBID": DeclineCode.TRANSACTION_NOT_PERMITTED,
    "ACQ.ERROR_BALANCE_PAYMENT_DISABLE": DeclineCode.TRANSACTION_NOT_PERMITTED,
    "ACQ.MOBILE_PAYMENT_SWITCH_OFF": DeclineCode.TRANSACTION_NOT_PERMITTED,
    "ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT": DeclineCode.TRANSACTION_NOT_PERMITTED,
    "ACQ.SELLER_BEEN_BLOCKED": DeclineCode.TRANSACTION_NOT_PERMITTED,
    "ACQ.ACCESS_FORBIDDEN": DeclineCode.TRANSACTION_NOT_PERMITTED,
    "ACQ.BUYER_SELLER_EQUAL": DeclineCode.INVALID_TRANSACTION,
    "ACQ.TRADE_BUYER_NOT_MATCH": DeclineCode.INVALID_TRANSACTION,
    "ACQ.INVALID_PARAMETER": DeclineCode.INVALID_TRANSACTION,
    "ACQ.CONTEXT_INCONSISTENT": DeclineCode.DUPLICATE_TRANSACTION,
    "ACQ.TRADE_HAS_CLOSE": DeclineCode.INVALID_STATE,
}

# alipay.trade.refund business failures that certainly refused the refund.
REFUND_DECLINES: Mapping[str, DeclineCode] = {
    "ACQ.SELLER_BALANCE_NOT_ENOUGH": DeclineCode.INSUFFICIENT_FUNDS,
    "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL": DeclineCode.INVALID_AMOUNT,
    "ACQ.REASON_TRADE_REFUND_FEE_ERR": DeclineCode.INVALID_AMOUNT,
    "ACQ.REFUND_FEE_ERROR": DeclineCode.INVALID_AMOUNT,
    "ACQ.TRADE_NOT_EXIST": DeclineCode.INVALID_STATE,
    "ACQ.TRADE_STATUS_ERROR": DeclineCode.INVALID_STATE,
    "ACQ.TRADE_HAS_FINISHED": DeclineCode.INVALID_STATE,
    "ACQ.TRADE_NOT_ALLOW_REFUND": DeclineCode.TRANSACTION_NOT_PERMITTED,
    "ACQ.REASON_TRADE_BEEN_FREEZEN": DeclineCode.TRANSACTION_NOT_PERMITTED,
    "ACQ.DISCORDANT_REPEAT_REQUEST": DeclineCode.DUPLICATE_TRANSACTION,
    "ACQ.INVALID_PARAMETER": DeclineCode.INVALID_TRANSACTION,
}

# alipay.trade.cancel business failures that certainly refused the cancel.
CANCEL_DECLINES: Mapping[str, DeclineCode] = {
    "ACQ.TRADE_NOT_EXIST": DeclineCode.INVALID_STATE,
    "ACQ.TRADE_STATUS_ERROR": DeclineCode.INVALID_STATE,
    "ACQ.TRADE_CANCEL_TIME_OUT": DeclineCode.INVALID_STATE,
    "ACQ.SELLER_BALANCE_NOT_ENOUGH": DeclineCode.INSUFFICIENT_FUNDS,
    "ACQ.REASON_TRADE_BEEN_FREEZEN": DeclineCode.TRANSACTION_NOT_PERMITTED,
    "ACQ.INVALID_PARAMETER": DeclineCode.INVALID_TRANSACTION,
}

WAIT_BUYER_PAY = "WAIT_BUYER_PAY"
TRADE_SUCCESS = "TRADE_SUCCESS"
TRADE_CLOSED = "TRADE_CLOSED"
TRADE_FINISHED = "TRADE_FINISHED"
PAID_STATUSES = frozenset({TRADE_SUCCESS, TRADE_FINISHED})

_YUAN = re.compile(r"(0|[1-9][0-9]{0,9})(?:\.([0-9]{1,2}))?")


def to_yuan(amount: Money) -> str:
    """Minor units of CNY as the platform's yuan string, exactly: 8888 -> "88.88"."""
    check_amount(amount, "Alipay")
    fen = amount.amount_minor
    return f"{fen // 100}.{fen % 100:02d}"


def from_yuan(text: str) -> int:
    """A yuan string with 0 to 2 decimals as integer fen: "88.8" -> 8880. ValueError if bad."""
    match = _YUAN.fullmatch(text)
    if match is None:
        raise ValueError(f"not a yuan amount: {text!r}")
    whole, frac = match.group(1), match.group(2) or ""
    return int(whole) * 100 + int(frac.ljust(2, "0"))


def _code(body: Mapping[str, Any]) -> tuple[str, str]:
    return str(body.get("code", "")), str(body.get("sub_code", ""))


def _raw(body: Mapping[str, Any]) -> str:
    code, sub_code = _code(body)
    return sub_code or code


def _message(body: Mapping[str, Any]) -> str:
    return str(body.get("sub_msg") or body.get("msg") or "")[:200]


def _declined(code: DeclineCode, body: Mapping[str, Any]) -> OperationResult:
    return OperationResult.declined(code, raw_code=_raw(body), message=_message(body))


def _pending(body: Mapping[str, Any], why: str) -> OperationResult:
    return OperationResult.pending(why, raw_code=_raw(body))


def _amount(body: Mapping[str, Any], field: str, currency_field: str) -> Money | None:
    """The yuan amount `field`, in the currency `currency_field` names (CNY when absent: a
    cross-border trade's amounts are in its trans_currency)."""
    value, currency = body.get(field), body.get(currency_field)
    if not isinstance(value, str):
        return None
    return Money(from_yuan(value), currency if isinstance(currency, str) and currency else CURRENCY)


def pay_result(body: Mapping[str, Any]) -> OperationResult | None:
    """What an alipay.trade.pay answer means; None when only a query can tell."""
    code, sub_code = _code(body)
    if code == SUCCESS:
        return OperationResult.approved(
            raw_code=code,
            upstream_reference=str(body.get("trade_no", "")),
            approved_amount=_amount(body, "total_amount", "trans_currency"),
        )
    if code == WAITING:
        return _pending(body, "waiting for the buyer to confirm")
    if code == BUSINESS_FAILED and sub_code in PAY_DECLINES:
        return _declined(PAY_DECLINES[sub_code], body)
    # 20000, ACQ.SYSTEM_ERROR, ACQ.TRADE_HAS_SUCCESS (a repeat), and any code not known here.
    return None


def trade_result(body: Mapping[str, Any], operation: OperationType) -> OperationResult:
    """What an alipay.trade.query answer says about a payment (AUTHORIZE) or its void (VOID)."""
    code, sub_code = _code(body)
    if code == BUSINESS_FAILED and sub_code == TRADE_NOT_EXIST:
        return OperationResult(
            status=OperationStatus.NOT_FOUND, raw_code=sub_code, message=_message(body)
        )
    if code != SUCCESS:
        return _pending(body, "the trade could not be queried")
    status = str(body.get("trade_status", ""))
    trade_no = str(body.get("trade_no", ""))
    was_paid = status in PAID_STATUSES or (
        status == TRADE_CLOSED and bool(body.get("send_pay_date"))
    )
    if operation is OperationType.VOID:
        if status == TRADE_CLOSED:
            return OperationResult.approved(raw_code=status, upstream_reference=trade_no)
        if status == TRADE_FINISHED:
            return OperationResult.declined(DeclineCode.INVALID_STATE, raw_code=status)
        if status in (TRADE_SUCCESS, WAIT_BUYER_PAY):
            # The cancel has not taken effect: nothing was voided.
            return OperationResult(status=OperationStatus.NOT_FOUND, raw_code=status)
        return OperationResult.pending("unknown trade status", raw_code=status)
    if was_paid:
        return OperationResult.approved(
            raw_code=status,
            upstream_reference=trade_no,
            approved_amount=_amount(body, "total_amount", "trans_currency"),
        )
    if status == TRADE_CLOSED:
        return OperationResult.declined(
            DeclineCode.BUYER_CANCELLED, raw_code=status, upstream_reference=trade_no
        )
    return OperationResult.pending("the buyer has not paid yet", raw_code=status or code)


def cancel_result(body: Mapping[str, Any]) -> OperationResult:
    """What an alipay.trade.cancel answer means for the void."""
    code, sub_code = _code(body)
    if code == SUCCESS:
        return OperationResult.approved(
            raw_code=str(body.get("action") or code),
            upstream_reference=str(body.get("trade_no", "")),
        )
    if code == BUSINESS_FAILED and sub_code in CANCEL_DECLINES and body.get("retry_flag") != "Y":
        return _declined(CANCEL_DECLINES[sub_code], body)
    return _pending(body, "the cancel may be retried")


def refund_result(body: Mapping[str, Any]) -> OperationResult:
    """What an alipay.trade.refund answer means (fund_change N on a repeat is still a refund)."""
    code, sub_code = _code(body)
    if code == SUCCESS:
        return OperationResult.approved(
            raw_code=code, upstream_reference=str(body.get("trade_no", ""))
        )
    if code == BUSINESS_FAILED and sub_code in REFUND_DECLINES:
        return _declined(REFUND_DECLINES[sub_code], body)
    return _pending(body, "the refund's outcome is not known")


def refund_query_result(body: Mapping[str, Any]) -> OperationResult:
    """What an alipay.trade.fastpay.refund.query answer says about one refund request."""
    code, sub_code = _code(body)
    if code == BUSINESS_FAILED and sub_code == TRADE_NOT_EXIST:
        return OperationResult(status=OperationStatus.NOT_FOUND, raw_code=sub_code)
    if code != SUCCESS:
        return _pending(body, "the refund could not be queried")
    if not body.get("refund_amount"):
        # The platform answers an empty success when it has no such refund request.
        return OperationResult(status=OperationStatus.NOT_FOUND, raw_code=code)
    status = str(body.get("refund_status", ""))
    if status in ("", "REFUND_SUCCESS"):
        return OperationResult.approved(
            raw_code=status or code,
            upstream_reference=str(body.get("trade_no", "")),
            approved_amount=_amount(body, "refund_amount", "refund_currency"),
        )
    return OperationResult.pending("refund in progress", raw_code=status)
