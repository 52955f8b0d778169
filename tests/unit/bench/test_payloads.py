"""Wire bytes put together from pre-serialized parts equal what protobuf itself writes."""

from __future__ import annotations

from bench import payloads
from payswitch.gateway.v1 import gateway_service_pb2 as gw


def test_key_field_plus_body_is_the_serialized_request() -> None:
    body = payloads.authorize_body(amount_minor=2599, automatic=False)
    spliced = payloads.key_field("bench-abc-0-1f") + body
    message = gw.AuthorizeRequest.FromString(body)
    message.idempotency_key = "bench-abc-0-1f"
    assert spliced == message.SerializeToString()


def test_followup_gets_its_payment_id_at_run_time() -> None:
    long_id = "pay_" + "x" * 200  # longer than one varint byte of length
    request = payloads.key_field("k-c") + payloads.payment_id_field(long_id.encode())
    capture = gw.CaptureRequest.FromString(request)
    assert capture.idempotency_key == "k-c"
    assert capture.payment_id == long_id
    assert not capture.HasField("amount")  # unset: the whole authorized amount


def test_echo_reply_is_a_captured_payment_of_a_switch_sized_answer() -> None:
    reply = payloads.echo_response()
    payment = gw.AuthorizeResponse.FromString(reply).payment
    assert payloads.status_name(payment.status) == "CAPTURED"
    assert 200 <= len(reply) <= 600
    assert payment.payment_method.card_last4 == "4242"


def test_status_names_drop_the_prefix_and_keep_unknown_numbers() -> None:
    assert payloads.status_name(7) == "DECLINED"
    assert payloads.status_name(99) == "99"


def test_method_paths() -> None:
    assert payloads.method_path("Refund") == "/payswitch.gateway.v1.GatewayService/Refund"
