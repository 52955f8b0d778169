"""Card data rules: neither Redis nor the logs ever hold a full card number or a CVC."""

from __future__ import annotations

import grpc
import redis

from payswitch.gateway.v1 import gateway_service_pb2 as gw
from tests.integration.switch.conftest import connect
from tests.integration.switch.helpers import (
    APPROVE,
    CVC,
    DECLINE,
    TIMEOUT,
    authorize,
    error_info,
    key,
)


def _everything_in_redis(url: str) -> list[bytes]:
    """Every key and value in Redis, whatever its type."""
    out: list[bytes] = []
    with redis.Redis.from_url(url) as r:
        for k in r.scan_iter():
            out.append(k)
            kind = r.type(k)
            if kind == b"hash":
                for f, v in r.hgetall(k).items():
                    out += [f, v]
            elif kind == b"stream":
                for _, fields in r.xrange(k):
                    for f, v in fields.items():
                        out += [f, v]
            elif kind == b"zset":
                out += [m for m, _ in r.zrange(k, 0, -1, withscores=True)]
            elif kind == b"string":
                out.append(r.get(k) or b"")
    return out


async def test_no_full_card_number_or_cvc_in_the_store_the_journal_or_the_logs(
    sandbox_factory, switch_factory, redis_server
):
    sb = sandbox_factory("sandbox", "--hang-ms", "1000")
    sw = switch_factory([(sb, {"timeout_ms": 200})])
    async with connect(sw) as c:
        for number in (APPROVE, DECLINE, TIMEOUT):
            p = (await c.Authorize(authorize(number=number))).payment
            assert p.payment_method.card_bin == number[:6]
            assert p.payment_method.card_last4 == number[-4:]
            assert len(p.payment_method.fingerprint) == 64
        p = (await c.Authorize(authorize(manual=True))).payment
        await c.Capture(gw.CaptureRequest(idempotency_key=key(), payment_id=p.id))
    stored = _everything_in_redis(redis_server.url)
    assert any(b":journal" in x for x in stored), "the journal was written"
    blob = b"\n".join(stored)
    for number in (APPROVE, DECLINE, TIMEOUT):
        assert number.encode() not in blob
    fields = {x for x in stored if x.isalpha()}
    assert b"cvc" not in fields
    values = set(stored)
    assert CVC.encode() not in values
    logs = sw.log_text()
    assert logs, "the switch logged something"
    for number in (APPROVE, DECLINE, TIMEOUT):
        assert number not in logs


async def test_the_cvc_is_no_part_of_what_the_idempotency_key_remembers(
    sandbox_factory, switch_factory
):
    # The key's fingerprint of the request lives as long as the key; a CVC may not, even hashed.
    # So a retry that differs only in its CVC is the same request, and answered as the first was.
    sb = sandbox_factory()
    sw = switch_factory([(sb, {})])
    k = key()
    async with connect(sw) as client:
        first = await client.Authorize(authorize(idempotency_key=k))
        retry = authorize(idempotency_key=k)
        retry.payment_method.card.cvc = "123"
        again = await client.Authorize(retry)
        assert again.payment == first.payment
        assert len(sb.received("authorize")) == 1
        # Every other part of the card still counts: another card under the key is refused.
        try:
            await client.Authorize(authorize(number=DECLINE, idempotency_key=k))
            raise AssertionError("the key was accepted for another card")
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert error_info(exc).reason == "ERROR_REASON_IDEMPOTENCY_KEY_REUSED"
        assert len(sb.received("authorize")) == 1
