"""Malformed requests get INVALID_ARGUMENT naming each bad field; nothing is stored or forwarded."""

from __future__ import annotations

import grpc
import pytest
import redis

from payswitch.common.v1 import money_pb2, payment_method_pb2
from payswitch.common.v1 import payment_status_pb2 as ps
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from payswitch.gateway.v1 import payment_pb2
from tests.integration.switch.conftest import API_KEY, connect
from tests.integration.switch.helpers import authorize, card, error_info, violations


def _auth(**changes: object) -> gw.AuthorizeRequest:
    req = authorize(1000)
    for path, value in changes.items():
        target: object = req
        *parents, leaf = path.split("__")
        for p in parents:
            target = getattr(target, p)
        if value is None:
            target.ClearField(leaf)  # type: ignore[attr-defined]
        else:
            setattr(target, leaf, value)
    return req


def _wallet(kind: str, code: str) -> gw.AuthorizeRequest:
    req = authorize(1000, "CNY")
    if kind == "alipay":
        req.payment_method.CopyFrom(
            payment_method_pb2.PaymentMethod(alipay=payment_method_pb2.AlipayWallet(auth_code=code))
        )
    else:
        req.payment_method.CopyFrom(
            payment_method_pb2.PaymentMethod(
                wechat_pay=payment_method_pb2.WechatPayWallet(auth_code=code)
            )
        )
    return req


PID = "pay_" + "a" * 24

AUTHORIZE_CASES = [
    ("empty idempotency key", _auth(idempotency_key=""), ["idempotency_key"]),
    ("idempotency key too long", _auth(idempotency_key="k" * 256), ["idempotency_key"]),
    ("idempotency key with a newline", _auth(idempotency_key="a\nb"), ["idempotency_key"]),
    ("no amount", _auth(amount=None), ["amount"]),
    ("zero amount", _auth(amount__amount_minor=0), ["amount.amount_minor"]),
    ("negative amount", _auth(amount__amount_minor=-5), ["amount.amount_minor"]),
    ("amount over the limit", _auth(amount__amount_minor=10**12), ["amount.amount_minor"]),
    ("no currency", _auth(amount__currency=""), ["amount.currency"]),
    ("unknown currency", _auth(amount__currency="XYZ"), ["amount.currency"]),
    ("lower-case currency", _auth(amount__currency="usd"), ["amount.currency"]),
    ("no payment method", _auth(payment_method=None), ["payment_method"]),
    (
        "card number not Luhn-valid",
        _auth(payment_method__card__number="4242424242424241"),
        ["payment_method.card.number"],
    ),
    (
        "card number too short",
        _auth(payment_method__card__number="42424242"),
        ["payment_method.card.number"],
    ),
    (
        "card number too long",
        _auth(payment_method__card__number="4" * 20),
        ["payment_method.card.number"],
    ),
    (
        "card number with spaces",
        _auth(payment_method__card__number="4242 4242 4242 4242"),
        ["payment_method.card.number"],
    ),
    (
        "expiry month 13",
        _auth(payment_method__card__expiry_month=13),
        ["payment_method.card.expiry_month"],
    ),
    (
        "expiry month 0",
        _auth(payment_method__card__expiry_month=0),
        ["payment_method.card.expiry_month"],
    ),
    (
        "expired card",
        _auth(payment_method__card__expiry_year=2020),
        ["payment_method.card.expiry_year"],
    ),
    (
        "two-digit year",
        _auth(payment_method__card__expiry_year=31),
        ["payment_method.card.expiry_year"],
    ),
    (
        "card number with a trailing newline",
        _auth(payment_method__card__number="4242424242424242\n"),
        ["payment_method.card.number"],
    ),
    (
        "card number in Arabic-Indic digits",
        _auth(payment_method__card__number="\u0664\u0662" * 8),
        ["payment_method.card.number"],
    ),
    ("no CVC", _auth(payment_method__card__cvc=""), ["payment_method.card.cvc"]),
    # `^[0-9]+$` let this through once: `$` also matches before a final newline.
    (
        "CVC with a trailing newline",
        _auth(payment_method__card__cvc="123\n"),
        ["payment_method.card.cvc"],
    ),
    ("five-digit CVC", _auth(payment_method__card__cvc="12345"), ["payment_method.card.cvc"]),
    ("CVC with letters", _auth(payment_method__card__cvc="12a"), ["payment_method.card.cvc"]),
    (
        "holder name too long",
        _auth(payment_method__card__holder_name="x" * 65),
        ["payment_method.card.holder_name"],
    ),
    (
        "capture mode unspecified",
        _auth(capture_mode=payment_pb2.CAPTURE_MODE_UNSPECIFIED),
        ["capture_mode"],
    ),
    ("capture mode out of range", _auth(capture_mode=7), ["capture_mode"]),
    ("merchant reference too long", _auth(merchant_reference="r" * 65), ["merchant_reference"]),
    ("description with a control character", _auth(description="bad\x00text"), ["description"]),
    (
        "C1 control characters in the description and the holder's name",
        _auth(description="bad\x85text", payment_method__card__holder_name="A\x9bB"),
        ["payment_method.card.holder_name", "description"],
    ),
    ("alipay code too short", _wallet("alipay", "1234"), ["payment_method.alipay.auth_code"]),
    (
        "alipay code with a trailing newline",
        _wallet("alipay", "2888" * 4 + "\n"),
        ["payment_method.alipay.auth_code"],
    ),
    (
        "wechat code with letters",
        _wallet("wechat", "13abcdef12345678"),
        ["payment_method.wechat_pay.auth_code"],
    ),
    (
        "several bad fields at once",
        gw.AuthorizeRequest(
            amount=money_pb2.Money(amount_minor=0, currency="ZZZ"),
            payment_method=card("1234567890123", cvc="1"),
        ),
        [
            "idempotency_key",
            "amount.amount_minor",
            "amount.currency",
            "payment_method.card.number",
            "payment_method.card.cvc",
            "capture_mode",
        ],
    ),
]

FOLLOW_UP_CASES = [
    (
        "capture without a payment id",
        "Capture",
        gw.CaptureRequest(idempotency_key="k1"),
        ["payment_id"],
    ),
    (
        "capture of a malformed id",
        "Capture",
        gw.CaptureRequest(idempotency_key="k1", payment_id="nope"),
        ["payment_id"],
    ),
    (
        "capture of an id with a trailing newline",
        "Capture",
        gw.CaptureRequest(idempotency_key="k1", payment_id=PID + "\n"),
        ["payment_id"],
    ),
    (
        "capture of a negative amount",
        "Capture",
        gw.CaptureRequest(
            idempotency_key="k1",
            payment_id=PID,
            amount=money_pb2.Money(amount_minor=-1, currency="USD"),
        ),
        ["amount.amount_minor"],
    ),
    ("void without a key", "Void", gw.VoidRequest(payment_id=PID), ["idempotency_key"]),
    (
        "void with a long reason",
        "Void",
        gw.VoidRequest(idempotency_key="k", payment_id=PID, reason="r" * 257),
        ["reason"],
    ),
    (
        "refund in an unknown currency",
        "Refund",
        gw.RefundRequest(
            idempotency_key="k",
            payment_id=PID,
            amount=money_pb2.Money(amount_minor=5, currency="ABC"),
        ),
        ["amount.currency"],
    ),
    ("get with an empty id", "GetPayment", gw.GetPaymentRequest(), ["payment_id"]),
]


@pytest.fixture
def stack(sandbox_factory, switch_factory):
    sb = sandbox_factory()
    return sb, switch_factory([(sb, {})])


def _stored_keys(url: str) -> list[bytes]:
    with redis.Redis.from_url(url) as r:
        return [
            k
            for k in r.scan_iter()
            if b":idem:" in k or b":pay:" in k or b":journal" in k or b":rl" in k
        ]


async def test_malformed_requests_are_refused_naming_each_field(stack, redis_server):
    sb, sw = stack
    assert len(AUTHORIZE_CASES) + len(FOLLOW_UP_CASES) >= 25
    async with connect(sw) as client:
        for name, request, fields in AUTHORIZE_CASES:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await client.Authorize(request)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
            assert error_info(caught.value).reason == "ERROR_REASON_INVALID_REQUEST", name
            assert violations(caught.value) == fields, name
        for name, rpc, request, fields in FOLLOW_UP_CASES:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await getattr(client, rpc)(request)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
            assert violations(caught.value) == fields, name
    assert sb.received() == []
    assert _stored_keys(redis_server.url) == []


async def test_a_caller_without_a_known_key_is_unauthenticated(stack):
    _, sw = stack
    for api_key in (None, "psk_wrong"):
        async with connect(sw, api_key) as client:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await client.Authorize(authorize())
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert error_info(caught.value).reason == "ERROR_REASON_API_KEY_INVALID"


async def test_a_key_sent_without_the_bearer_scheme_is_unauthenticated(stack, redis_server):
    sb, sw = stack
    async with connect(sw, api_key=None) as client:
        for value in (API_KEY, f"Basic {API_KEY}", f"Bearer{API_KEY}", f"Token {API_KEY}"):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await client.Authorize(authorize(), metadata=(("authorization", value),))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, value
            assert error_info(caught.value).reason == "ERROR_REASON_API_KEY_INVALID", value
            assert "authorization: Bearer <key>" in (caught.value.details() or ""), value
        assert sb.received() == []
        assert _stored_keys(redis_server.url) == []
        # The scheme's name is case-insensitive (RFC 7235), as other servers take it.
        for value in (f"bearer {API_KEY}", f"BEARER {API_KEY}"):
            reply = await client.Authorize(authorize(), metadata=(("authorization", value),))
            assert reply.payment.status == ps.PAYMENT_STATUS_CAPTURED, value


# Bytes that are no protobuf message: a length-delimited field (tag 0x0a) that runs past the end,
# and an invalid wire type.
_GARBAGE = (b"\x0a\x7fshort", b"\xff\xff\xff\xff")


@pytest.mark.parametrize("method", ["Authorize", "Capture", "Void", "Refund", "GetPayment"])
@pytest.mark.parametrize("body", _GARBAGE)
async def test_bytes_that_are_no_request_are_invalid_argument(
    sandbox_factory, switch_factory, redis_server, method: str, body: bytes
):
    sb = sandbox_factory()
    sw = switch_factory([(sb, {})])
    async with grpc.aio.insecure_channel(sw.address) as chan:
        call = chan.unary_unary(f"/payswitch.gateway.v1.GatewayService/{method}")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(body, metadata=(("authorization", f"Bearer {API_KEY}"),), timeout=10)
        exc = caught.value
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(exc).reason == "ERROR_REASON_INVALID_REQUEST"
        assert violations(exc) == ["request"]
        # Without a valid key, the key is what is wrong.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(body, timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with redis.Redis.from_url(redis_server.url) as r:
        assert [k for k in r.scan_iter() if b":idem:" in k or b":pay:" in k] == []
    assert sb.received() == []
