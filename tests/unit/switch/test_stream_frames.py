"""The stream answers' framing: written by hand, read back by protobuf as the messages it means."""

from __future__ import annotations

import pytest

from payswitch.gateway.v1 import gateway_service_pb2 as gw
from payswitch.gateway.v1 import payment_pb2
from switch.server import _STREAM_ERROR_FIELD, _STREAM_FIELDS, _frame


def _answer(size: int) -> bytes:
    """A serialized AuthorizeResponse of about `size` bytes."""
    payment = payment_pb2.Payment(id="pay_1", status_message="x" * size)
    return gw.AuthorizeResponse(payment=payment).SerializeToString()


@pytest.mark.parametrize("request_id", [0, 1, 127, 128, 300, 2**40])
@pytest.mark.parametrize("size", [0, 100, 126, 127, 200, 20_000])
def test_a_framed_answer_reads_back_with_its_id_and_payload(request_id: int, size: int) -> None:
    body = _answer(size)
    one = gw.StreamPaymentsResponse.FromString(
        _frame(request_id, _STREAM_FIELDS["authorize"], body, False)
    )
    assert one.id == request_id
    assert one.WhichOneof("response") == "authorize"
    assert one.authorize.SerializeToString() == body

    batch = gw.StreamPaymentBatchesResponse.FromString(
        _frame(request_id, _STREAM_FIELDS["authorize"], body, True) * 3
    )
    assert list(batch.responses) == [one, one, one]


def test_an_error_answer_is_the_error_field() -> None:
    status = b"\x08\x03\x12\x03bad"  # google.rpc.Status: code 3, message "bad"
    framed = gw.StreamPaymentsResponse.FromString(_frame(7, _STREAM_ERROR_FIELD, status, False))
    assert (framed.id, framed.error.code, framed.error.message) == (7, 3, "bad")
