"""Answers that cannot be trusted: refused clearly, the payment left PENDING, never approved."""

from __future__ import annotations

import logging
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.sdk.errors import InvalidResponseError, OutcomeUnknownError
from adapters.sdk.types import DeclineCode, OperationStatus, OperationType
from adapters.walletkit.httpserver import HttpRequest, HttpServer, Reply
from adapters.walletkit.keys import key_serial
from adapters.wechat.adapter import WechatPayAdapter
from tests.integration.alipay.alipaykit import Events, inquire, ref
from tests.integration.wechat.conftest import AdapterFactory
from tests.integration.wechat.wechatkit import SimulatorProcess, authorize, code, settings

AUTH = OperationType.AUTHORIZE


@pytest.mark.parametrize(
    ("scenario", "why"),
    [
        ("3001", "does not verify"),
        ("3002", "does not verify"),
        ("3003", "replayed"),
        ("3004", "stale"),
        ("3005", "unsigned"),
    ],
)
async def test_forged_approvals_are_refused_and_the_real_outcome_found_by_query(
    make_adapter: AdapterFactory, scenario: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The simulator fails these payments, then answers with a forged success.
    adapter, events = await make_adapter(poll_interval_s=0)
    await adapter.authorize(authorize(ref("genuine"), code("0000")))  # something to replay
    r = ref(f"forged{scenario}")
    with caplog.at_level(logging.ERROR), pytest.raises(InvalidResponseError, match=why):
        await adapter.authorize(authorize(r, code(scenario)))
    found = await adapter.inquire(inquire(r, AUTH))
    assert (found.status, found.decline_code) == (
        OperationStatus.DECLINED,
        DeclineCode.DO_NOT_HONOR,
    )
    assert not events.about(r)
    assert all("PRIVATE KEY" not in m for m in caplog.messages)


async def test_with_the_wrong_platform_key_nothing_is_believed(
    make_adapter: AdapterFactory,
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    adapter, events = await make_adapter(platform_key=stranger, poll_interval_s=0.1)
    r = ref("wrongkey")
    with pytest.raises(InvalidResponseError, match="does not verify"):
        await adapter.authorize(authorize(r, code("0000")))
    # A key whose own serial is configured: the platform's answers name another serial.
    named, _ = await make_adapter(platform_key=stranger, platform_serial=key_serial(stranger))
    with pytest.raises(InvalidResponseError, match="serial"):
        await named.inquire(inquire(r, AUTH))
    assert not events.items  # nothing settled: the payment stays PENDING for the switch


async def test_with_the_wrong_merchant_key_the_platform_refuses_and_nothing_happens(
    make_adapter: AdapterFactory, simulator: SimulatorProcess
) -> None:
    wrong = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    before = await simulator.stats()
    for overrides in ({"merchant_key": wrong}, {"merchant_serial": "0" * 40}):
        adapter, _ = await make_adapter(**overrides)
        with pytest.raises(InvalidResponseError, match="SIGN_ERROR"):
            await adapter.authorize(authorize(ref("wrongmch"), code("0000")))
    after = await simulator.stats()
    assert after["refused"] - before["refused"] == 2 and after["orders"] == before["orders"]


async def test_a_clock_far_off_is_refused_both_ways(
    make_adapter: AdapterFactory, simulator: SimulatorProcess
) -> None:
    adapter, _ = await make_adapter(clock=lambda: time.time() - 3600)
    before = await simulator.stats()
    with pytest.raises(InvalidResponseError, match="stale"):
        await adapter.authorize(authorize(ref("clock"), code("0000")))
    after = await simulator.stats()
    assert after["refused"] - before["refused"] == 1 and after["orders"] == before["orders"]


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (200, b'{"trade_state":"SUCCESS"}', InvalidResponseError),
        (202, b"", InvalidResponseError),
        (500, b"oops", OutcomeUnknownError),
    ],
)
async def test_unsigned_answers_from_an_impostor_are_refused(
    simulator: SimulatorProcess, status: int, body: bytes, error: type[Exception]
) -> None:
    async def impostor(request: HttpRequest) -> Reply:
        return Reply(status, body, {"Content-Type": "application/json"})

    server = HttpServer(impostor, host="127.0.0.1", port=0)
    await server.start()
    adapter = WechatPayAdapter(
        settings(
            simulator, notify=False, api_base=f"http://127.0.0.1:{server.port}", poll_interval_s=0
        )
    )
    await adapter.start(Events())
    try:
        with pytest.raises(error):
            await adapter.authorize(authorize(ref("impostor"), code("0000")))
    finally:
        await adapter.stop()
        await server.close()
