"""The simulator checks requests as strictly as the platform and signs every answer."""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.alipay.client import AlipayClient
from adapters.alipay.signing import envelope_is_authentic, parse_envelope, sign_params
from adapters.walletkit import keys
from adapters.walletkit.httpclient import HttpClient
from tests.integration.alipay.alipaykit import APP_ID, SimulatorProcess, code, ref


class Raw:
    """Sends hand-made parameter sets to the gateway and reads the verified answer."""

    def __init__(self, sim: SimulatorProcess) -> None:
        self.sim = sim
        self.http = HttpClient(f"http://127.0.0.1:{sim.port}")
        self.app_key = keys.load_private_key(sim.keys.path("app_private"))
        self.platform = keys.load_public_key(sim.keys.path("platform_public"))
        self.client = AlipayClient(
            gateway_url=sim.gateway,
            app_id=APP_ID,
            app_private_key=self.app_key,
            platform_public_key=self.platform,
            http=self.http,
        )

    def params(self, method: str, biz: dict[str, Any]) -> dict[str, str]:
        return self.client.request_params(method, biz)

    async def send(self, params: dict[str, str], method: str) -> tuple[str, dict[str, Any]]:
        body = urllib.parse.urlencode(params).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        response = await self.http.request("POST", "/gateway.do", headers=headers, body=body)
        envelope = parse_envelope(response.body, method)
        assert envelope_is_authentic(envelope, self.platform), "every answer is signed"
        return envelope.key, envelope.body


@pytest.fixture
async def raw(simulator: SimulatorProcess) -> AsyncIterator[Raw]:
    r = Raw(simulator)
    yield r
    await r.http.aclose()


def pay_biz() -> dict[str, Any]:
    return {
        "out_trade_no": ref("sim"),
        "scene": "bar_code",
        "auth_code": code("0000"),
        "subject": "x",
        "total_amount": "1.00",
    }


async def test_a_well_signed_request_is_served(raw: Raw) -> None:
    _, body = await raw.send(raw.params("alipay.trade.pay", pay_biz()), "alipay.trade.pay")
    assert body["code"] == "10000"


async def test_a_tampered_request_gets_invalid_signature_as_the_platform_answers(raw: Raw) -> None:
    params = raw.params("alipay.trade.pay", pay_biz())
    params["biz_content"] = params["biz_content"].replace("1.00", "0.01")
    key, body = await raw.send(params, "alipay.trade.pay")
    assert key == "alipay_trade_pay_response"
    assert (body["code"], body["msg"], body["sub_code"]) == (
        "40002",
        "Invalid Arguments",
        "isv.invalid-signature",
    )


@pytest.mark.parametrize(
    ("change", "sub_code"),
    [
        ({"sign": None}, "isv.missing-signature"),
        ({"app_id": "2021999999999999"}, "isv.invalid-app-id"),
        ({"sign_type": "RSA"}, "isv.invalid-signature-type"),
        ({"timestamp": "2001-01-01 00:00:00"}, "isv.invalid-timestamp"),
        ({"timestamp": "yesterday"}, "isv.invalid-timestamp"),
        ({"charset": "gbk"}, "isv.invalid-charset"),
    ],
)
async def test_gateway_checks(raw: Raw, change: dict[str, str | None], sub_code: str) -> None:
    params = raw.params("alipay.trade.query", {"out_trade_no": "x"})
    for name, value in change.items():
        if value is None:
            params.pop(name)
        else:
            params[name] = value
            if name != "sign":
                # Re-signed, so that only the changed parameter is wrong.
                params["sign"] = sign_params(params, raw.app_key)
    _, body = await raw.send(params, "alipay.trade.query")
    assert body["sub_code"] == sub_code and body["code"] in ("40001", "40002")


async def test_an_unknown_method_is_answered_under_error_response(raw: Raw) -> None:
    key, body = await raw.send(raw.params("alipay.trade.teleport", {}), "alipay.trade.teleport")
    assert (key, body["sub_code"]) == ("error_response", "isv.invalid-method")


async def test_business_checks(raw: Raw) -> None:
    biz = pay_biz() | {"total_amount": "1.001"}
    _, body = await raw.send(raw.params("alipay.trade.pay", biz), "alipay.trade.pay")
    assert (body["code"], body["sub_code"]) == ("40004", "ACQ.INVALID_PARAMETER")
    first = pay_biz()
    await raw.send(raw.params("alipay.trade.pay", first), "alipay.trade.pay")
    changed = first | {"total_amount": "2.00"}
    _, body = await raw.send(raw.params("alipay.trade.pay", changed), "alipay.trade.pay")
    assert body["sub_code"] == "ACQ.CONTEXT_INCONSISTENT"
    _, body = await raw.send(raw.params("alipay.trade.pay", first), "alipay.trade.pay")
    assert body["sub_code"] == "ACQ.TRADE_HAS_SUCCESS"
