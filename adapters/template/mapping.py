"""Canonical <-> wire format: requests to upstream messages, upstream codes to results.

Any upstream status that is not explicitly final maps to PENDING: guessing "declined" for a
payment that went through is how money gets lost.
"""

from __future__ import annotations

from adapters.sdk.types import (
    AuthorizeRequest,
    Card,
    DeclineCode,
    OperationResult,
    OperationStatus,
    RefundRequest,
)

APPROVED_CODE = "00"
DECLINES: dict[str, DeclineCode] = {
    "05": DeclineCode.DO_NOT_HONOR,
    "12": DeclineCode.INVALID_TRANSACTION,
    "13": DeclineCode.INVALID_AMOUNT,
    "51": DeclineCode.INSUFFICIENT_FUNDS,
}


def pay_message(request: AuthorizeRequest, card: Card) -> dict[str, str]:
    return {
        "op": "pay",
        "order_id": request.reference,
        "amount": str(request.amount.amount_minor),
        "currency": request.amount.currency,
        "card_number": card.number,
    }


def refund_message(request: RefundRequest) -> dict[str, str]:
    return {
        "op": "refund",
        "order_id": request.original_reference,
        "refund_id": request.reference,
        "amount": str(request.amount.amount_minor),
    }


def query_message(reference: str) -> dict[str, str]:
    return {"op": "query", "order_id": reference}


def result_from(answer: dict[str, str]) -> OperationResult:
    """The canonical result of an upstream answer."""
    code = answer.get("code", "")
    reference = answer.get("trade_no", "")
    if code == APPROVED_CODE:
        return OperationResult(
            status=OperationStatus.APPROVED, raw_code=code, upstream_reference=reference
        )
    if code == "NOTFOUND":
        return OperationResult(status=OperationStatus.NOT_FOUND, raw_code=code)
    if code in DECLINES:
        return OperationResult(
            status=OperationStatus.DECLINED,
            decline_code=DECLINES[code],
            raw_code=code,
            upstream_reference=reference,
        )
    return OperationResult(status=OperationStatus.PENDING, raw_code=code, message="unknown code")
