"""Alipay RSA2: the signing string, a known answer with a fixed key, and raw-text verification."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.alipay.client import AlipayClient, beijing_timestamp
from adapters.alipay.signing import (
    MalformedEnvelope,
    envelope_is_authentic,
    parse_envelope,
    render_envelope,
    response_key,
    sign_params,
    signing_string,
    top_level_members,
    verify_params,
)
from adapters.walletkit.httpclient import HttpClient
from adapters.walletkit.keys import sign_sha256_rsa, verify_sha256_rsa
from tests.unit.alipay.fixedkey import fixed_rsa_key, textbook_sha256_rsa

BIZ = (
    '{"out_trade_no":"20150320010101001","scene":"bar_code","auth_code":"28763443825664394",'
    '"subject":"Iphone6 16G","total_amount":"88.88"}'
)
PARAMS = {
    "app_id": "2014072300007148",
    "method": "alipay.trade.pay",
    "format": "JSON",
    "charset": "utf-8",
    "sign_type": "RSA2",
    "timestamp": "2014-07-24 03:07:50",
    "version": "1.0",
    "notify_url": "",
    "biz_content": BIZ,
}
EXPECTED_STRING = (
    "app_id=2014072300007148&biz_content=" + BIZ + "&charset=utf-8&format=JSON"
    "&method=alipay.trade.pay&sign_type=RSA2&timestamp=2014-07-24 03:07:50&version=1.0"
)
# SHA256withRSA of EXPECTED_STRING with fixed_rsa_key(): PKCS#1 v1.5 is deterministic.
EXPECTED_SIGN = (
    "qU87mT9llnRJEN2UfnitW4hNEmauolHJhlw/mL7VuRpe5/C/Gv0xTIZP7Ce1ujkNYcHkFrJrHlKmpZCND/f0DePw3atu"
    "1mavfzPQEr08+QH4EOvjYqo365vbchj6cYKzcC6Y8ySg1z+PAl4XuG43HEgsOynNx2BhIvJ2Iyb73bE99Yk3fsGrBIVR"
    "ceNnl4D840i0gLP7Sz2v9DKGJOxNn4Kcw0/Bu1D/JtauBNTwoAp+BYix1/97m48QEfbXHoG4yQmf5BQuu9m2YhrW8Mu4"
    "hZHe8b9obwOnnRb0lHwGquIhMVQ2nZS+cakhWy9MOzoon683tDfQ/rZrveiPV1m7/A=="
)


@pytest.fixture(scope="module")
def fresh_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_signing_string_sorts_drops_empty_values_and_sign_and_does_not_url_encode() -> None:
    params = {**PARAMS, "sign": "whatever", "zz": "a b&c=d"}
    assert signing_string(params) == EXPECTED_STRING + "&zz=a b&c=d"


def test_known_answer_with_the_fixed_key() -> None:
    key = fixed_rsa_key()
    assert signing_string(PARAMS) == EXPECTED_STRING
    assert sign_params(PARAMS, key) == EXPECTED_SIGN
    # The same bytes computed by hand from RFC 8017: no library shortcut hides a wrong scheme.
    assert base64.b64decode(EXPECTED_SIGN) == textbook_sha256_rsa(key, EXPECTED_STRING.encode())


def test_signed_request_verifies_and_any_change_breaks_it(fresh_key: rsa.RSAPrivateKey) -> None:
    params = {**PARAMS, "sign": sign_params(PARAMS, fresh_key)}
    assert verify_params(params, fresh_key.public_key())
    assert not verify_params(
        {**params, "biz_content": BIZ.replace("88.88", "88.89")}, fresh_key.public_key()
    )
    assert not verify_params({**params, "sign": ""}, fresh_key.public_key())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert not verify_params(params, other.public_key())


def test_members_keep_the_exact_raw_text_as_received() -> None:
    inner = '{"msg":"Su\\u0063cess","x":"a}b\\"{","n":[1, {"k":2}]}'
    raw = '{ "alipay_trade_pay_response" : ' + inner + ' ,"sign":"S"}'
    members = top_level_members(raw)
    assert members["alipay_trade_pay_response"][0] == inner
    assert members["alipay_trade_pay_response"][1]["msg"] == "Success"
    assert members["sign"] == ('"S"', "S")


@pytest.mark.parametrize(
    "raw",
    [
        '{"a":1,"a":2}',
        "[1]",
        '{"a":1} trailing',
        '{"a" 1}',
        '{"a":1,}',
        "",
    ],
)
def test_malformed_answers_are_refused(raw: str) -> None:
    with pytest.raises(MalformedEnvelope):
        top_level_members(raw)


def test_verification_uses_the_raw_text_not_a_reserialization(fresh_key: rsa.RSAPrivateKey) -> None:
    # The platform signs its own bytes: spacing and escapes a JSON library would not reproduce.
    inner = '{"code":"10000",  "msg": "Success","subject":"\\u82f9\\u679c"}'
    sign = sign_sha256_rsa(fresh_key, inner.encode())
    raw = f'{{"alipay_trade_pay_response":{inner},"sign":"{sign}"}}'.encode()
    envelope = parse_envelope(raw, "alipay.trade.pay")
    assert envelope.raw == inner
    assert envelope.body["subject"] == "苹果"
    assert envelope_is_authentic(envelope, fresh_key.public_key())
    for reserialized in (
        json.dumps(envelope.body),
        json.dumps(envelope.body, ensure_ascii=False, separators=(",", ":")),
    ):
        assert not verify_sha256_rsa(fresh_key.public_key(), reserialized.encode(), sign)


def test_rendered_answer_round_trips_and_tampering_is_detected(
    fresh_key: rsa.RSAPrivateKey,
) -> None:
    body = {"code": "10000", "msg": "Success", "out_trade_no": "r1", "total_amount": "88.88"}
    raw = render_envelope(response_key("alipay.trade.pay"), body, fresh_key)
    envelope = parse_envelope(raw, "alipay.trade.pay")
    assert envelope.body == body and envelope_is_authentic(envelope, fresh_key.public_key())
    tampered = parse_envelope(raw.replace(b"88.88", b"99.99"), "alipay.trade.pay")
    assert not envelope_is_authentic(tampered, fresh_key.public_key())
    unsigned = parse_envelope(raw.split(b',"sign"')[0] + b"}", "alipay.trade.pay")
    assert unsigned.sign is None and not envelope_is_authentic(unsigned, fresh_key.public_key())


def test_gateway_errors_come_under_error_response(fresh_key: rsa.RSAPrivateKey) -> None:
    raw = render_envelope(
        "error_response", {"code": "40002", "sub_code": "isv.invalid-method"}, fresh_key
    )
    assert parse_envelope(raw, "alipay.trade.pay").key == "error_response"
    with pytest.raises(MalformedEnvelope):
        parse_envelope(b'{"other_response":{},"sign":"x"}', "alipay.trade.pay")


async def test_client_builds_the_common_parameters(fresh_key: rsa.RSAPrivateKey) -> None:
    http = HttpClient("http://127.0.0.1:9")
    client = AlipayClient(
        gateway_url="http://127.0.0.1:9/gateway.do",
        app_id="2021000000000001",
        app_private_key=fresh_key,
        platform_public_key=fresh_key.public_key(),
        http=http,
        clock=lambda: 1_700_000_000.0,
    )
    params = client.request_params("alipay.trade.query", {"out_trade_no": "r1"})
    assert params["timestamp"] == "2023-11-15 06:13:20" == beijing_timestamp(1_700_000_000.0)
    assert {k: params[k] for k in ("format", "charset", "sign_type", "version")} == {
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "version": "1.0",
    }
    assert json.loads(params["biz_content"]) == {"out_trade_no": "r1"}
    assert verify_params(params, fresh_key.public_key())
    await http.aclose()
