"""The notification listener on its own: signed, encrypted requests in, events out."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.sdk.types import ChannelEvent, Money, OperationType
from adapters.walletkit.httpserver import HttpRequest
from adapters.walletkit.keys import key_serial
from adapters.walletkit.memo import OperationMemo
from adapters.wechat.notify import NOTIFY_PATH, NotificationListener
from adapters.wechat.signing import (
    NonceMemory,
    PlatformVerifier,
    encrypt_resource,
    signed_headers,
)

MCHID = "1900000109"
KEY32 = b"0123456789abcdefghijABCDEFGHIJ32"
NOW = 1_800_000_000


class Published:
    """The EventSink: keeps what the listener published."""

    def __init__(self) -> None:
        self.items: list[ChannelEvent] = []

    def publish(self, event: ChannelEvent) -> None:
        self.items.append(event)


@pytest.fixture(scope="module")
def platform() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def listener(
    platform: rsa.RSAPrivateKey, memo: OperationMemo, events: Published
) -> NotificationListener:
    serial = key_serial(platform.public_key())
    return NotificationListener(
        host="127.0.0.1",
        port=0,
        verifier=PlatformVerifier(platform.public_key(), serial, NonceMemory()),
        apiv3_key=KEY32,
        mchid=MCHID,
        memo=memo,
        events=events,
        clock=lambda: NOW,
    )


def refund_success(platform: rsa.RSAPrivateKey, reference: str, fen: int | None) -> HttpRequest:
    """A REFUND.SUCCESS notification as the platform posts it (`fen` None: no amount in it)."""
    plain: dict[str, object] = {
        "mchid": MCHID,
        "out_refund_no": reference,
        "refund_id": "50302026112800000000000001",
        "refund_status": "SUCCESS",
    }
    if fen is not None:
        plain["amount"] = {"refund": fen, "total": 10000, "currency": "CNY"}
    body = json.dumps(
        {
            "resource_type": "encrypt-resource",
            "event_type": "REFUND.SUCCESS",
            "resource": encrypt_resource(
                KEY32, plain, associated_data="refund", original_type="refund"
            ),
        }
    ).encode()
    headers = signed_headers(platform, key_serial(platform.public_key()), body, timestamp=NOW)
    return HttpRequest("POST", NOTIFY_PATH, {k.lower(): v for k, v in headers.items()}, body)


@pytest.mark.parametrize(
    ("asked", "notified"),
    [
        (None, 3000),  # forgotten after --poll-for-s, or unknown after a restart
        (Money(3000, "CNY"), None),  # asked, but the notification names no amount
    ],
    ids=["no-asked-amount-on-record", "no-amount-notified"],
)
async def test_a_success_that_cannot_be_held_to_the_asked_amount_is_acknowledged_not_published(
    platform: rsa.RSAPrivateKey, asked: Money | None, notified: int | None
) -> None:
    memo, events = OperationMemo(), Published()
    if asked is not None:
        memo.begin("rf-1", OperationType.REFUND, "pay-1", amount=asked)
    reply = await listener(platform, memo, events).handle(
        refund_success(platform, "rf-1", notified)
    )
    assert reply.status == 204  # acknowledged: the platform stops sending it
    assert events.items == []
    assert memo.final("rf-1") is None  # nothing kept: a later Inquire asks the platform
