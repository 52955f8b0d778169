"""Answers that cannot be trusted: refused clearly, the payment left PENDING, never approved."""

from __future__ import annotations

import logging
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.alipay.adapter import AlipayAdapter
from adapters.sdk.errors import (
    InvalidResponseError,
    OutcomeUnknownError,
    UpstreamUnavailableError,
)
from adapters.sdk.types import DeclineCode, OperationStatus, OperationType
from adapters.walletkit.httpserver import HttpRequest, HttpServer, Reply
from adapters.walletkit.wallet import Tuning
from tests.integration.alipay.alipaykit import (
    Events,
    SimulatorProcess,
    authorize,
    code,
    inquire,
    ref,
    refund,
    settings,
)
from tests.integration.alipay.conftest import AdapterFactory

AUTH, REFUND = OperationType.AUTHORIZE, OperationType.REFUND


@pytest.mark.parametrize(
    ("scenario", "why"),
    [
        ("3001", "signature does not verify"),
        ("3002", "signature does not verify"),
        ("3003", "replayed"),
        ("3004", "unsigned"),
    ],
)
async def test_forged_approvals_are_refused_and_the_real_outcome_found_by_query(
    make_adapter: AdapterFactory, scenario: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The simulator declines these payments, then answers with a forged success.
    adapter, events = await make_adapter(poll_interval_s=0)
    await adapter.authorize(authorize(ref("genuine"), code("0000")))  # something to replay
    r = ref(f"forged{scenario}")
    with caplog.at_level(logging.ERROR), pytest.raises(InvalidResponseError, match=why):
        await adapter.authorize(authorize(r, code(scenario)))
    found = await adapter.inquire(inquire(r, AUTH))
    assert (found.status, found.decline_code) == (
        OperationStatus.DECLINED,
        DeclineCode.BUYER_CANCELLED,
    )
    assert not events.about(r)
    assert all("PRIVATE KEY" not in m and "BEGIN" not in m for m in caplog.messages)


async def test_a_replayed_answer_to_another_refund_of_the_trade_is_not_this_refund(
    make_adapter: AdapterFactory,
) -> None:
    # 3005: the first refund is made; the second is not, and is answered by the genuine, signed
    # answer to the first. That answer names the trade, which is the same, not the refund.
    adapter, events = await make_adapter(
        tuning=Tuning(timeout_s=2.0, poll_interval_s=0, poll_for_s=0)
    )
    paid, first, second = ref("pay"), ref("rf1"), ref("rf2")
    assert (
        await adapter.authorize(authorize(paid, code("3005"), 10000))
    ).status is OperationStatus.APPROVED
    made = await adapter.refund(refund(first, paid, 3000, 10000))
    assert made.status is OperationStatus.APPROVED
    replayed = await adapter.refund(refund(second, paid, 2000, 10000))
    assert (replayed.status, replayed.raw_code) == (OperationStatus.PENDING, "MADE_NOT_SHOWN")
    # Not approved; and not NOT_FOUND either, even past the window: a replay reads like a refund
    # whose query lags (3006), so it is held for someone to reconcile with Alipay.
    held = await adapter.inquire(inquire(second, REFUND, paid))
    assert (held.status, held.raw_code) == (OperationStatus.PENDING, "MADE_NOT_SHOWN")
    fresh, _ = await make_adapter(poll_interval_s=0)
    assert (await fresh.inquire(inquire(first, REFUND, paid))).status is OperationStatus.APPROVED
    assert not events.about(second)


async def test_with_the_wrong_platform_key_nothing_is_believed(
    make_adapter: AdapterFactory,
) -> None:
    # An impostor platform (or a key mix-up): every answer is refused, even an approval.
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    adapter, events = await make_adapter(platform_public_key=stranger, poll_interval_s=0.1)
    r = ref("wrongkey")
    with pytest.raises(InvalidResponseError, match="platform public key"):
        await adapter.authorize(authorize(r, code("0000")))
    with pytest.raises(InvalidResponseError):
        await adapter.inquire(inquire(r, AUTH))
    assert not events.items  # the poller could not settle it either: it stays PENDING


async def test_with_the_wrong_app_key_the_platform_refuses_and_nothing_happens(
    make_adapter: AdapterFactory, simulator: SimulatorProcess
) -> None:
    wrong = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    adapter, _ = await make_adapter(app_private_key=wrong)
    before = await simulator.stats()
    with pytest.raises(InvalidResponseError, match=r"isv\.invalid-signature"):
        await adapter.authorize(authorize(ref("wrongapp"), code("0000")))
    after = await simulator.stats()
    assert after["refused"] - before["refused"] == 1
    assert after["trades"] == before["trades"]


async def test_a_clock_far_off_is_refused_by_the_gateway_before_anything_happens(
    make_adapter: AdapterFactory, simulator: SimulatorProcess
) -> None:
    adapter, _ = await make_adapter(clock=lambda: time.time() - 3600)
    before = await simulator.stats()
    with pytest.raises(UpstreamUnavailableError, match=r"isv\.invalid-timestamp"):
        await adapter.authorize(authorize(ref("clock"), code("0000")))
    assert (await simulator.stats())["trades"] == before["trades"]


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (200, b"<html>not json</html>", InvalidResponseError),
        (200, b'{"alipay_trade_pay_response":{"code":"10000"', InvalidResponseError),
        (200, b'{"some_other_response":{"code":"10000"},"sign":"x"}', InvalidResponseError),
        (200, b'{"alipay_trade_pay_response":"10000","sign":"x"}', InvalidResponseError),
        (502, b"bad gateway", OutcomeUnknownError),
        (404, b"", InvalidResponseError),
    ],
)
async def test_garbage_from_the_gateway_is_refused_not_crashed_on(
    simulator: SimulatorProcess, status: int, body: bytes, error: type[Exception]
) -> None:
    async def garbage(request: HttpRequest) -> Reply:
        return Reply(status, body)

    server = HttpServer(garbage, host="127.0.0.1", port=0)
    await server.start()
    fake = SimulatorProcess(simulator.keys, port=server.port)
    adapter = AlipayAdapter(settings(fake, poll_interval_s=0))
    await adapter.start(Events())
    try:
        with pytest.raises(error):
            await adapter.authorize(authorize(ref("junk"), code("0000")))
    finally:
        await adapter.stop()
        await server.close()


def test_generated_private_keys_are_not_world_readable(simulator: SimulatorProcess) -> None:
    for name in ("app_private", "platform_private"):
        path = simulator.keys.dir / f"{name}.pem"
        assert path.stat().st_mode & 0o077 == 0
        assert serialization.load_pem_private_key(path.read_bytes(), None).key_size == 2048  # type: ignore[union-attr]
