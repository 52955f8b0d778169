"""Wire bytes of Gateway requests and responses, serialized once so the timed loop only sends."""

from __future__ import annotations

import datetime

from payswitch.common.v1 import money_pb2, payment_method_pb2, payment_status_pb2
from payswitch.gateway.v1 import gateway_service_pb2, payment_pb2

GATEWAY_SERVICE = "payswitch.gateway.v1.GatewayService"

# The sandbox channel's test cards (adapters/sandbox/testdata.py will carry the same numbers):
# the outcome is chosen by the number, like a PSP's test cards.
APPROVE_CARD = "4242424242424242"
DECLINE_CARD = "4000000000000002"
CVC = "123"
CURRENCY = "USD"

# Amounts in minor units the requests cycle through, so that the bodies are not all alike.
AMOUNTS_MINOR: tuple[int, ...] = (1000, 1250, 2599, 4200, 9999, 15000, 23456, 100000)


def method_path(rpc: str) -> str:
    """The HTTP/2 path of one Gateway method, e.g. /payswitch.gateway.v1.GatewayService/Capture."""
    return f"/{GATEWAY_SERVICE}/{rpc}"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def length_delimited(field_number: int, data: bytes) -> bytes:
    """One length-delimited protobuf field (a string or message) as it appears on the wire."""
    return _varint(field_number << 3 | 2) + _varint(len(data)) + data


def varint_field(field_number: int, value: int) -> bytes:
    """One varint protobuf field (an integer) as it appears on the wire."""
    return _varint(field_number << 3) + _varint(value)


def leading_varint_field(data: bytes) -> int:
    """The value of field 1, a varint, when a message opens with it (StreamPaymentsRequest.id).

    Zero when the message opens with another field: proto3 leaves out a zero id.
    """
    if not data or data[0] != 0x08:
        return 0
    value, shift = 0, 0
    i = 1  # past the field's tag byte
    while True:
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value
        shift += 7
        i += 1


def key_field(idempotency_key: str) -> bytes:
    """Field 1, `idempotency_key`, of every state-changing Gateway request.

    Protobuf writes fields in number order and a parser takes them in any order, so a request
    is this field followed by a body serialized once without its key: byte for byte what
    `SerializeToString` would give, at the cost of a concatenation.
    """
    return length_delimited(1, idempotency_key.encode("ascii"))


def payment_id_field(payment_id: bytes) -> bytes:
    """Field 2, `payment_id`, of CaptureRequest and RefundRequest, appended at run time."""
    return length_delimited(2, payment_id)


def _expiry_year() -> int:
    return datetime.date.today().year + 3


def authorize_body(
    *,
    amount_minor: int,
    card_number: str = APPROVE_CARD,
    automatic: bool = True,
    currency: str = CURRENCY,
    expiry_month: int = 12,
    expiry_year: int | None = None,
    cvc: str = CVC,
) -> bytes:
    """An AuthorizeRequest without its idempotency key, serialized."""
    mode = payment_pb2.CAPTURE_MODE_AUTOMATIC if automatic else payment_pb2.CAPTURE_MODE_MANUAL
    request = gateway_service_pb2.AuthorizeRequest(
        amount=money_pb2.Money(amount_minor=amount_minor, currency=currency),
        payment_method=payment_method_pb2.PaymentMethod(
            card=payment_method_pb2.Card(
                number=card_number,
                expiry_month=expiry_month,
                expiry_year=_expiry_year() if expiry_year is None else expiry_year,
                cvc=cvc,
            )
        ),
        capture_mode=mode,
    )
    return request.SerializeToString()


def bad_authorize_bodies() -> tuple[bytes, ...]:
    """AuthorizeRequests the switch must refuse with INVALID_ARGUMENT, one fault each."""
    unspecified_mode = gateway_service_pb2.AuthorizeRequest.FromString(
        authorize_body(amount_minor=1000)
    )
    unspecified_mode.capture_mode = payment_pb2.CAPTURE_MODE_UNSPECIFIED
    return (
        authorize_body(amount_minor=1000, card_number="4242424242424241"),  # fails Luhn
        authorize_body(amount_minor=0),  # not positive
        authorize_body(amount_minor=1000, currency="ZZZ"),  # no such currency
        authorize_body(amount_minor=1000, expiry_year=2001),  # expired
        authorize_body(amount_minor=1000, cvc="12"),  # too short
        unspecified_mode.SerializeToString(),
    )


_STATUS_NAMES: dict[int, str] = {
    int(value): name.removeprefix("PAYMENT_STATUS_")
    for name, value in payment_status_pb2.PaymentStatus.items()
}


def status_name(status: int) -> str:
    """A PaymentStatus value without its prefix, e.g. CAPTURED; unknown values as numbers."""
    return _STATUS_NAMES.get(status) or str(status)


def echo_response() -> bytes:
    """A captured payment as the switch would answer an Authorize: the echo server's reply."""
    usd = CURRENCY
    amount = money_pb2.Money(amount_minor=2599, currency=usd)
    zero = money_pb2.Money(amount_minor=0, currency=usd)
    payment = payment_pb2.Payment(
        id="pay_01JDB8Z6M4Q2W7X9K3N5R8T0VA",
        merchant_reference="order-000000001234",
        status=payment_status_pb2.PAYMENT_STATUS_CAPTURED,
        amount=amount,
        authorized_amount=amount,
        captured_amount=amount,
        refunded_amount=zero,
        capture_mode=payment_pb2.CAPTURE_MODE_AUTOMATIC,
        payment_method=payment_method_pb2.PaymentMethodSummary(
            type=payment_method_pb2.PAYMENT_METHOD_TYPE_CARD,
            card_bin=APPROVE_CARD[:6],
            card_last4=APPROVE_CARD[-4:],
            card_expiry_month=12,
            card_expiry_year=_expiry_year(),
            fingerprint="9f" * 32,
        ),
        channel="sandbox",
        upstream_reference="sbx_7Y2K9Q4M1P",
        authorization_code="A1B2C3",
    )
    payment.events.add(
        operation=payment_status_pb2.OPERATION_TYPE_AUTHORIZE,
        status=payment_status_pb2.PAYMENT_STATUS_CAPTURED,
        amount=amount,
        channel_reference="op_01JDB8Z6M4Q2W7X9K3N5R8T0VB",
    ).time.FromSeconds(1_732_560_000)
    payment.create_time.FromSeconds(1_732_560_000)
    payment.update_time.FromSeconds(1_732_560_000)
    return gateway_service_pb2.AuthorizeResponse(payment=payment).SerializeToString()
