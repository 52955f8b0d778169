"""WeChat Pay v3 <-> canonical: fen amounts, trade_state and refund status tables, error codes.

Pure functions over verified answers. Only what is explicitly final becomes APPROVED or
DECLINED; everything else is PENDING (or, for a payment, "ask with a query").
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from adapters.sdk.types import DeclineCode, Money, OperationResult, OperationStatus, OperationType
from adapters.walletkit.wallet import CNY, MAX_AMOUNT_FEN, check_amount

CURRENCY = CNY
MAX_FEN = MAX_AMOUNT_FEN
# WeChat Pay's out_trade_no is 6 to 32 characters; the Channel contract's references are 1 to 64.
MIN_OUT_TRADE_NO = 6
MAX_OUT_TRADE_NO = 32

SUCCESS = "SUCCESS"
REFUND = "REFUND"
NOTPAY = "NOTPAY"
CLOSED = "CLOSED"
REVOKED = "REVOKED"
USERPAYING = "USERPAYING"
PAYERROR = "PAYERROR"

# Payment codes that certainly refused the payment.
PAY_DECLINES: Mapping[str, DeclineCode] = {
    "NOTENOUGH": DeclineCode.INSUFFICIENT_FUNDS,
    "AUTH_CODE_INVALID": DeclineCode.INVALID_PAYMENT_CODE,
    "AUTHCODEEXPIRE": DeclineCode.INVALID_PAYMENT_CODE,
    "AUTH_CODE_ERROR": DeclineCode.INVALID_PAYMENT_CODE,
    "NOTSUPORTCARD": DeclineCode.TRANSACTION_NOT_PERMITTED,
    "BUYER_MISMATCH": DeclineCode.INVALID_TRANSACTION,
    "TRADE_ERROR": DeclineCode.DO_NOT_HONOR,
    "RULE_LIMIT": DeclineCode.EXCEEDS_LIMIT,
    "ORDER_CLOSED": DeclineCode.INVALID_STATE,
    "ORDERREVERSED": DeclineCode.INVALID_STATE,
    "OUT_TRADE_NO_USED": DeclineCode.DUPLICATE_TRANSACTION,
    "PARAM_ERROR": DeclineCode.INVALID_TRANSACTION,
}

# Refund codes that certainly refused the refund.
REFUND_DECLINES: Mapping[str, DeclineCode] = {
    "NOT_ENOUGH": DeclineCode.INSUFFICIENT_FUNDS,
    "PARAM_ERROR": DeclineCode.INVALID_AMOUNT,
    "INVALID_REQUEST": DeclineCode.INVALID_STATE,
    "RESOURCE_NOT_EXISTS": DeclineCode.INVALID_STATE,
    "USER_ACCOUNT_ABNORMAL": DeclineCode.TRANSACTION_NOT_PERMITTED,
    "NO_AUTH": DeclineCode.TRANSACTION_NOT_PERMITTED,
}

# Reverse (void) codes that certainly refused the reverse.
REVERSE_DECLINES: Mapping[str, DeclineCode] = {
    "ORDER_NOT_EXIST": DeclineCode.INVALID_STATE,
    "REVERSE_EXPIRE": DeclineCode.INVALID_STATE,
    "INVALID_REQUEST": DeclineCode.INVALID_STATE,
    "PARAM_ERROR": DeclineCode.INVALID_TRANSACTION,
}

# Refusals of the call itself (our signature, our account): nothing was executed.
SIGN_ERROR = "SIGN_ERROR"
ACCOUNT_REFUSALS = frozenset({"MCH_NOT_EXISTS", "APPID_MCHID_NOT_MATCH", "NO_AUTH_MCH"})


def to_fen(amount: Money) -> int:
    """Minor units of CNY as the platform's integer fen, checked against its limits."""
    check_amount(amount, "WeChat Pay")
    return amount.amount_minor


def out_trade_no(reference: str) -> str:
    """The order number for a reference: itself when it fits WeChat's 6 to 32 characters, else
    a digest (a reference under 6 characters, which the platform would refuse as PARAM_ERROR,
    or over 32).

    `*` is allowed in an out_trade_no but never in a switch reference, so a digest can never
    equal a reference that is used as it is. The reference also travels in `attach`.
    """
    if MIN_OUT_TRADE_NO <= len(reference) <= MAX_OUT_TRADE_NO:
        return reference
    return "*" + hashlib.sha256(reference.encode()).hexdigest()[: MAX_OUT_TRADE_NO - 1]


def error_code(body: Mapping[str, Any]) -> str:
    return str(body.get("code", ""))


def _message(body: Mapping[str, Any]) -> str:
    return str(body.get("message") or body.get("trade_state_desc") or "")[:200]


def _amount(body: Mapping[str, Any], name: str = "total") -> Money | None:
    """`amount.<name>` of a transaction or refund, in `amount.currency` (CNY when absent)."""
    amount = body.get("amount")
    if not isinstance(amount, dict):
        return None
    value, currency = amount.get(name), amount.get("currency")
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return Money(value, currency if isinstance(currency, str) and currency else CURRENCY)


def transaction_result(body: Mapping[str, Any], operation: OperationType) -> OperationResult:
    """What a transaction (codepay answer, query answer, notification) says about a payment
    (AUTHORIZE) or about its reverse (VOID)."""
    state = str(body.get("trade_state", ""))
    txn = str(body.get("transaction_id", ""))
    was_paid = state in (SUCCESS, REFUND) or (
        state in (CLOSED, REVOKED) and bool(body.get("success_time"))
    )
    if operation is OperationType.VOID:
        if state in (REVOKED, CLOSED):
            return OperationResult.approved(raw_code=state, upstream_reference=txn)
        if state == REFUND:
            return OperationResult.declined(DeclineCode.INVALID_STATE, raw_code=state)
        if state in (SUCCESS, NOTPAY, USERPAYING, PAYERROR):
            # The reverse has not taken effect: nothing was voided.
            return OperationResult(status=OperationStatus.NOT_FOUND, raw_code=state)
        return OperationResult.pending("unknown trade state", raw_code=state)
    if was_paid:
        return OperationResult.approved(
            raw_code=state, upstream_reference=txn, approved_amount=_amount(body)
        )
    if state in (CLOSED, REVOKED):
        return OperationResult.declined(
            DeclineCode.BUYER_CANCELLED, raw_code=state, upstream_reference=txn
        )
    if state == PAYERROR:
        return OperationResult.declined(
            DeclineCode.DO_NOT_HONOR, raw_code=state, message=_message(body), upstream_reference=txn
        )
    # NOTPAY, USERPAYING, ACCEPT and anything not known here.
    return OperationResult.pending("the buyer has not paid yet", raw_code=state)


def pay_error_result(body: Mapping[str, Any]) -> OperationResult | None:
    """A declined payment for a code that certainly refused it; None when a query must tell."""
    code = error_code(body)
    if code in PAY_DECLINES:
        return OperationResult.declined(PAY_DECLINES[code], raw_code=code, message=_message(body))
    # SYSTEM_ERROR, BANKERROR, ORDERPAID (a repeat), USERPAYING and anything not known here.
    return None


def refund_result(body: Mapping[str, Any]) -> OperationResult:
    """What a refund object (answer, query, notification) says about the refund."""
    status = str(body.get("status") or body.get("refund_status") or "")
    refund_id = str(body.get("refund_id", ""))
    if status == SUCCESS:
        return OperationResult.approved(
            raw_code=status, upstream_reference=refund_id, approved_amount=_amount(body, "refund")
        )
    if status == CLOSED:
        return OperationResult.declined(
            DeclineCode.INVALID_STATE, raw_code=status, upstream_reference=refund_id
        )
    # PROCESSING, and ABNORMAL (the money is stuck until someone acts): not final.
    return OperationResult.pending(
        "refund in progress", raw_code=status, upstream_reference=refund_id
    )


def refund_error_result(body: Mapping[str, Any]) -> OperationResult:
    code = error_code(body)
    if code in REFUND_DECLINES:
        return OperationResult.declined(
            REFUND_DECLINES[code], raw_code=code, message=_message(body)
        )
    return OperationResult.pending("the refund's outcome is not known", raw_code=code)


def reverse_error_result(body: Mapping[str, Any]) -> OperationResult:
    code = error_code(body)
    if code in REVERSE_DECLINES:
        return OperationResult.declined(
            REVERSE_DECLINES[code], raw_code=code, message=_message(body)
        )
    return OperationResult.pending("the reverse may be retried", raw_code=code)
