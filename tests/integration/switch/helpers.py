"""Request builders and status readers shared by the switch's integration tests."""

from __future__ import annotations

import secrets

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from payswitch.common.v1 import money_pb2, payment_method_pb2
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from payswitch.gateway.v1 import payment_pb2

APPROVE = "4242424242424242"
DECLINE = "4000000000000002"
TIMEOUT = "4000000000000341"
PENDING = "4000000000000259"
SLOW = "4000000000003220"
CVC = "7319"


def key() -> str:
    return "idem-" + secrets.token_hex(8)


def card(number: str = APPROVE, cvc: str = CVC) -> payment_method_pb2.PaymentMethod:
    return payment_method_pb2.PaymentMethod(
        card=payment_method_pb2.Card(
            number=number, expiry_month=12, expiry_year=2031, cvc=cvc, holder_name="A Tester"
        )
    )


def authorize(
    amount: int = 1000,
    currency: str = "USD",
    number: str = APPROVE,
    *,
    manual: bool = False,
    idempotency_key: str | None = None,
) -> gw.AuthorizeRequest:
    return gw.AuthorizeRequest(
        idempotency_key=idempotency_key or key(),
        amount=money_pb2.Money(amount_minor=amount, currency=currency),
        payment_method=card(number),
        capture_mode=payment_pb2.CAPTURE_MODE_MANUAL
        if manual
        else payment_pb2.CAPTURE_MODE_AUTOMATIC,
        merchant_reference="order-1",
    )


def money(amount: int, currency: str = "USD") -> money_pb2.Money:
    return money_pb2.Money(amount_minor=amount, currency=currency)


def error_info(exc: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None, "the error carries no rich status"
    for d in status.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            return info
    raise AssertionError("no ErrorInfo detail")


def detail(exc: grpc.aio.AioRpcError, kind: type) -> object:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None
    for d in status.details:
        if d.Is(kind.DESCRIPTOR):
            out = kind()
            d.Unpack(out)
            return out
    raise AssertionError(f"no {kind.__name__} detail")


def violations(exc: grpc.aio.AioRpcError) -> list[str]:
    bad = detail(exc, error_details_pb2.BadRequest)
    return [v.field for v in bad.field_violations]  # type: ignore[attr-defined]
