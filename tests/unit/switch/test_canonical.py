"""What an idempotency key remembers of its request: deterministic bytes without the key, and,
for a card, without the CVC (which may not be kept in any form, hashed or not)."""

from __future__ import annotations

from payswitch.common.v1 import money_pb2, payment_method_pb2
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from switch.server import _canonical_authorize


def request(cvc: str, key: str = "k-1", number: str = "4242424242424242") -> gw.AuthorizeRequest:
    return gw.AuthorizeRequest(
        idempotency_key=key,
        amount=money_pb2.Money(amount_minor=1000, currency="USD"),
        payment_method=payment_method_pb2.PaymentMethod(
            card=payment_method_pb2.Card(
                number=number, expiry_month=12, expiry_year=2031, cvc=cvc, holder_name="A"
            )
        ),
    )


def test_the_key_and_the_cvc_are_left_out_and_the_request_is_left_as_it_was() -> None:
    r = request("7319")
    sent = r.SerializeToString()
    canonical = _canonical_authorize(r)
    assert r.SerializeToString() == sent  # the CVC and the key are back for the channel
    assert b"7319" not in canonical and b"k-1" not in canonical
    assert canonical == _canonical_authorize(request("", key="k-2"))
    assert canonical == _canonical_authorize(request("123", key="k-3"))
    assert canonical != _canonical_authorize(request("7319", number="4000000000000002"))


def test_a_wallet_request_has_no_card_to_blank() -> None:
    r = gw.AuthorizeRequest(
        idempotency_key="k-1",
        amount=money_pb2.Money(amount_minor=1000, currency="CNY"),
        payment_method=payment_method_pb2.PaymentMethod(
            alipay=payment_method_pb2.AlipayWallet(auth_code="281234567890123456")
        ),
    )
    sent = r.SerializeToString()
    assert b"281234567890123456" in _canonical_authorize(r)
    assert r.SerializeToString() == sent
    assert r.payment_method.WhichOneof("method") == "alipay"
