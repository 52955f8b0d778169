"""Channel proto <-> SDK dataclasses: round trips, and every bad field named on decode."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from google.protobuf.message import Message

from adapters.sdk import convert
from adapters.sdk.errors import InvalidRequestError
from adapters.sdk.types import (
    AuthorizeRequest,
    Capabilities,
    CaptureRequest,
    Card,
    ChannelEvent,
    DeclineCode,
    InquireRequest,
    Money,
    OperationResult,
    OperationStatus,
    OperationType,
    PaymentMethodType,
    RefundRequest,
    VoidRequest,
    Wallet,
)
from payswitch.channel.v1 import channel_service_pb2 as ch
from payswitch.common.v1 import money_pb2
from payswitch.common.v1 import payment_method_pb2 as pm

CARD = Card(number="4242424242424242", expiry_month=12, expiry_year=2031, cvc="123")
USD_10 = Money(1000, "USD")


def test_authorize_round_trip_card() -> None:
    request = AuthorizeRequest(
        reference="ref-1",
        merchant_id="m_1",
        amount=USD_10,
        payment_method=Card("5555555555554444", 1, 2030, "9876", holder_name="A B"),
        capture=True,
        description="coffee",
    )
    pb = convert.authorize_request_to_proto(request)
    assert convert.authorize_request_from_proto(pb) == request


@pytest.mark.parametrize("kind", [PaymentMethodType.ALIPAY, PaymentMethodType.WECHAT_PAY])
def test_authorize_round_trip_wallets(kind: PaymentMethodType) -> None:
    request = AuthorizeRequest(
        reference="w",
        merchant_id="m",
        amount=Money(8888, "CNY"),
        payment_method=Wallet(type=kind, auth_code="286512345678900000"),
        capture=False,
    )
    pb = convert.authorize_request_to_proto(request)
    assert convert.authorize_request_from_proto(pb) == request


def test_follow_up_round_trips() -> None:
    capture = CaptureRequest("c1", "m", "a1", "up-1", Money(500, "EUR"), Money(900, "EUR"))
    void = VoidRequest("v1", "m", "a1", "", Money(900, "EUR"))
    refund = RefundRequest("r1", "m", "a1", "up", Money(1, "JPY"), Money(5, "JPY"), reason="x")
    inquire = InquireRequest("r1", "m", OperationType.REFUND, "a1", Money(1, "JPY"))
    bare_inquire = InquireRequest("a1", "m", OperationType.AUTHORIZE, "", None)
    assert convert.capture_request_from_proto(convert.capture_request_to_proto(capture)) == capture
    assert convert.void_request_from_proto(convert.void_request_to_proto(void)) == void
    assert convert.refund_request_from_proto(convert.refund_request_to_proto(refund)) == refund
    for request in (inquire, bare_inquire):
        pb = convert.inquire_request_to_proto(request)
        assert convert.inquire_request_from_proto(pb) == request


def _authorize(**changes: object) -> ch.AuthorizeRequest:
    pb = convert.authorize_request_to_proto(
        AuthorizeRequest("ref", "m", USD_10, CARD, capture=False)
    )
    for name, value in changes.items():
        target: Message = pb
        *path, last = name.split("__")
        for part in path:
            target = getattr(target, part)
        if value is None:
            target.ClearField(last)
        else:
            setattr(target, last, value)
    return pb


def _fields(decode: Callable[[ch.AuthorizeRequest], object], pb: ch.AuthorizeRequest) -> set[str]:
    with pytest.raises(InvalidRequestError) as info:
        decode(pb)
    return {field for field, _ in info.value.violations}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"reference": ""}, "reference"),
        ({"reference": "x" * 65}, "reference"),
        ({"reference": "has space"}, "reference"),
        ({"reference": "ünïcode"}, "reference"),
        ({"merchant_id": ""}, "merchant_id"),
        ({"amount": None}, "amount"),
        ({"amount__amount_minor": 0}, "amount.amount_minor"),
        ({"amount__amount_minor": -5}, "amount.amount_minor"),
        ({"amount__currency": "usd"}, "amount.currency"),
        ({"amount__currency": "US"}, "amount.currency"),
        ({"payment_method": None}, "payment_method"),
        ({"payment_method__card__number": "4242424242424241"}, "payment_method.card.number"),
        ({"payment_method__card__number": "42424242"}, "payment_method.card.number"),
        ({"payment_method__card__number": "4242 4242 4242 4242"}, "payment_method.card.number"),
        ({"payment_method__card__expiry_month": 13}, "payment_method.card.expiry_month"),
        ({"payment_method__card__expiry_month": 0}, "payment_method.card.expiry_month"),
        ({"payment_method__card__expiry_year": 31}, "payment_method.card.expiry_year"),
        ({"payment_method__card__cvc": "12"}, "payment_method.card.cvc"),
        ({"payment_method__card__cvc": "12a"}, "payment_method.card.cvc"),
        ({"payment_method__card__holder_name": "n" * 65}, "payment_method.card.holder_name"),
        ({"description": "d" * 129}, "description"),
    ],
)
def test_authorize_rejects_bad_field(changes: dict[str, object], field: str) -> None:
    assert _fields(convert.authorize_request_from_proto, _authorize(**changes)) == {field}


def test_a_card_without_cvc_is_taken_as_released_from_review() -> None:
    decoded = convert.authorize_request_from_proto(_authorize(payment_method__card__cvc=""))
    assert decoded.payment_method.number == CARD.number
    assert decoded.payment_method.cvc == ""


def test_every_bad_field_is_named_at_once() -> None:
    pb = _authorize(reference="", amount__amount_minor=0, amount__currency="xx")
    assert _fields(convert.authorize_request_from_proto, pb) == {
        "reference",
        "amount.amount_minor",
        "amount.currency",
    }


@pytest.mark.parametrize("kind", ["alipay", "wechat_pay"])
@pytest.mark.parametrize("code", ["", "123456789012345", "1" * 25, "28651234567890000x"])
def test_wallet_auth_code_must_be_16_to_24_digits(kind: str, code: str) -> None:
    pb = _authorize(payment_method=None)
    getattr(pb.payment_method, kind).auth_code = code
    assert _fields(convert.authorize_request_from_proto, pb) == {f"payment_method.{kind}.auth_code"}


def test_capture_amount_checked_against_authorized_amount() -> None:
    pb = convert.capture_request_to_proto(
        CaptureRequest("c", "m", "a", "", Money(1001, "USD"), Money(1000, "USD"))
    )
    with pytest.raises(InvalidRequestError) as info:
        convert.capture_request_from_proto(pb)
    assert [f for f, _ in info.value.violations] == ["amount.amount_minor"]
    pb.amount.CopyFrom(money_pb2.Money(amount_minor=10, currency="EUR"))
    with pytest.raises(InvalidRequestError) as info:
        convert.capture_request_from_proto(pb)
    assert [f for f, _ in info.value.violations] == ["amount.currency"]


def test_follow_ups_require_original_reference_and_amounts() -> None:
    with pytest.raises(InvalidRequestError) as info:
        convert.refund_request_from_proto(ch.RefundRequest(reference="r", merchant_id="m"))
    assert {f for f, _ in info.value.violations} == {
        "original_reference",
        "amount",
        "captured_amount",
    }
    with pytest.raises(InvalidRequestError) as info:
        convert.void_request_from_proto(
            ch.VoidRequest(reference="v", merchant_id="m", original_reference="bad ref")
        )
    assert {f for f, _ in info.value.violations} == {"original_reference", "amount"}


@pytest.mark.parametrize(
    "operation", [OperationType.CAPTURE, OperationType.VOID, OperationType.REFUND]
)
def test_inquire_of_a_follow_up_requires_its_original_reference(operation: OperationType) -> None:
    pb = ch.InquireRequest(reference="f1", merchant_id="m", operation=operation.value)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError) as info:
        convert.inquire_request_from_proto(pb)
    assert [f for f, _ in info.value.violations] == ["original_reference"]
    pb.original_reference = "a1"
    assert convert.inquire_request_from_proto(pb).original_reference == "a1"
    # An authorization is its own original: it is asked about with or without it.
    pb.operation, pb.original_reference = OperationType.AUTHORIZE.value, ""  # type: ignore[assignment]
    assert convert.inquire_request_from_proto(pb).operation is OperationType.AUTHORIZE


@pytest.mark.parametrize("operation", [0, 99])
def test_inquire_rejects_unspecified_or_unknown_operation(operation: int) -> None:
    pb = ch.InquireRequest(reference="r", merchant_id="m")
    pb.operation = operation  # type: ignore[assignment]
    with pytest.raises(InvalidRequestError) as info:
        convert.inquire_request_from_proto(pb)
    assert [f for f, _ in info.value.violations] == ["operation"]


def test_result_round_trip() -> None:
    result = OperationResult(
        status=OperationStatus.DECLINED,
        decline_code=DeclineCode.INSUFFICIENT_FUNDS,
        raw_code="51",
        message="insufficient funds",
        upstream_reference="rrn",
        authorization_code="",
        approved_amount=Money(5, "USD"),
    )
    assert convert.result_from_proto(convert.result_to_proto(result)) == result
    approved = OperationResult.approved(authorization_code="123456")
    assert convert.result_from_proto(convert.result_to_proto(approved)) == approved


def test_decline_without_code_is_sent_as_do_not_honor() -> None:
    pb = convert.result_to_proto(OperationResult(status=OperationStatus.DECLINED))
    assert pb.decline_code == DeclineCode.DO_NOT_HONOR.value


def test_result_without_status_is_refused() -> None:
    with pytest.raises(ValueError, match="status"):
        convert.result_from_proto(ch.OperationResult())


def test_capabilities_round_trip() -> None:
    caps = Capabilities(
        name="sandbox",
        payment_methods=frozenset({PaymentMethodType.CARD, PaymentMethodType.ALIPAY}),
        currencies=frozenset({"USD", "CNY"}),
        min_amount_minor=50,
        max_amount_minor=10_000,
        supports_partial_capture=False,
        supports_partial_refund=False,
    )
    pb = convert.capabilities_to_proto(caps)
    assert list(pb.currencies) == ["CNY", "USD"]
    assert convert.capabilities_from_proto(pb) == caps


def test_capabilities_ignore_unknown_method_types() -> None:
    pb = ch.DescribeResponse(name="x", payment_methods=[pm.PAYMENT_METHOD_TYPE_CARD])
    pb.payment_methods.append(42)  # type: ignore[arg-type]
    assert convert.capabilities_from_proto(pb).payment_methods == {PaymentMethodType.CARD}


def test_event_round_trip() -> None:
    event = ChannelEvent("ref", OperationType.AUTHORIZE, OperationResult.approved(raw_code="00"))
    assert convert.event_from_proto(convert.event_to_proto(event)) == event
    with pytest.raises(ValueError, match="operation"):
        convert.event_from_proto(ch.WatchEventsResponse(reference="r"))


@pytest.mark.parametrize(
    ("number", "valid"),
    [("4242424242424242", True), ("4242424242424241", False), ("79927398713", True)],
)
def test_luhn(number: str, valid: bool) -> None:
    assert convert.luhn_valid(number) is valid


def _luhn_by_the_book(number: str) -> bool:
    # ISO/IEC 7812-1 Annex B, step by step: double every second digit from the right.
    total = 0
    for i, digit in enumerate(reversed(number)):
        d = int(digit) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def test_luhn_agrees_with_the_standard_on_every_length_and_refuses_non_digits() -> None:
    rng = random.Random(3)
    for _ in range(3000):
        number = "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 20)))
        assert convert.luhn_valid(number) is _luhn_by_the_book(number), number
    assert convert.luhn_valid("4242424242424242") and convert.luhn_valid("79927398713")
    assert not convert.luhn_valid("4242424242424241")
    # Not ASCII digits: never valid, even where the digit arithmetic would add up.
    for bad in ("", "4242 4242 4242 4242", "424242424242424\uff12", "٤٢٤٢", "0" * 15 + "x"):
        assert not convert.luhn_valid(bad), bad
