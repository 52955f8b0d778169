"""Messages written around bytes already made are the bytes protobuf itself writes."""

from __future__ import annotations

import random

from payswitch.channel.v1 import channel_service_pb2 as ch
from payswitch.common.v1 import money_pb2
from switch import wire
from switch.link import encode_operation


def test_varints_and_fields_match_protobuf() -> None:
    rng = random.Random(7)
    for _ in range(500):
        n = rng.choice(
            [0, 1, 127, 128, 300, 16383, 16384, 2**32 - 1, 2**63 + 5, rng.getrandbits(40)]
        )
        ours = wire.uint_field(1, n) + wire.field(2, b"x" * rng.randrange(300))
        theirs = ch.ExchangeAnswer(id=n).SerializeToString()
        assert ours.startswith(theirs)


def test_an_encoded_batch_is_the_exchange_request_protobuf_writes() -> None:
    rng = random.Random(11)
    kinds = ["authorize", "capture", "void", "refund", "inquire"]
    requests = {
        "authorize": lambda i: ch.AuthorizeRequest(
            reference=f"r{i}", amount=money_pb2.Money(amount_minor=i * 37, currency="USD")
        ),
        "capture": lambda i: ch.CaptureRequest(reference=f"c{i}", upstream_reference="u"),
        "void": lambda i: ch.VoidRequest(reference=f"v{i}"),
        "refund": lambda i: ch.RefundRequest(reference=f"f{i}", reason="r" * (i % 200)),
        "inquire": lambda i: ch.InquireRequest(reference=f"q{i}"),
    }
    for n in range(1, 60):
        batch = []
        expected = ch.ExchangeRequest()
        for i in range(n):
            kind = rng.choice(kinds)
            op_id, timeout_ms = rng.getrandbits(rng.choice([7, 20, 63])), rng.randrange(1, 10**6)
            request = requests[kind](i)
            batch.append(encode_operation(op_id, timeout_ms, kind, request))
            op = expected.operations.add(id=op_id, timeout_ms=timeout_ms)
            getattr(op, kind).CopyFrom(request)
        joined = b"".join(batch)
        assert ch.ExchangeRequest.FromString(joined) == expected
        assert joined == expected.SerializeToString()
