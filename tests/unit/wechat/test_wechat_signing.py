"""WeChat Pay v3: the Authorization header (known answer), answer checks, AES-256-GCM resources."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.walletkit.keys import key_serial
from adapters.wechat.signing import (
    MAX_SKEW_S,
    DecryptionFailed,
    NonceMemory,
    PlatformVerifier,
    SignatureRefused,
    authorization,
    decrypt_resource,
    encrypt_resource,
    parse_authorization,
    request_message,
    signed_headers,
)
from tests.unit.alipay.fixedkey import fixed_rsa_key, textbook_sha256_rsa

BODY = (
    '{"appid":"wxd678efh567hg6787","mchid":"1900000109",'
    '"out_trade_no":"1217752501201407033233368018"}'
)
TS, NONCE = "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242"
SERIAL = "F7E785217A8657E69CE9CE982281EF4AE6C3C724"
# The header for BODY with fixed_rsa_key(): PKCS#1 v1.5 signatures are deterministic.
EXPECTED_SIGNATURE = (
    "exrNpK1Pxl59cGuATVgnfva+pB1bWuyogezYqY8RGs0JxlLmBAioJJ5qETbg3Jzb2aXmxPEof/NUXYlrUCnAd1nwnCbP"
    "kHU8iK7iaqOafuzwQkO3jvWNOT+2UybvfWQk69Hl4kEbLG1x4HoApJR2jGIY4OEQHv4cb9rSRG98yOCn/kaKlWcXtwtf"
    "YP6LzW18mkMtFA2a1FfuF37gaGrh0OnNSc1e9rayViK/Z8ybQhjAK9j4+xSkT+t8DDptdY1su7ri+0jb0L1GGr58NnI+"
    "+o7823wI42jUBjW+2SA42c7CVwsyQI8iHcAhI2vlUFCdNXW7t0Jjvn+xcYLpYGhU+A=="
)
KEY32 = b"0123456789abcdefghijABCDEFGHIJ32"


@pytest.fixture(scope="module")
def platform() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def verifier(platform: rsa.RSAPrivateKey) -> PlatformVerifier:
    return PlatformVerifier(platform.public_key(), key_serial(platform.public_key()), NonceMemory())


def test_request_message_is_five_lines() -> None:
    message = request_message("GET", "/v3/pay/transactions/out-trade-no/1?mchid=2", TS, NONCE, "")
    assert (
        message == f"GET\n/v3/pay/transactions/out-trade-no/1?mchid=2\n{TS}\n{NONCE}\n\n".encode()
    )


def test_authorization_header_known_answer() -> None:
    header = authorization(
        mchid="1900000109",
        serial_no=SERIAL,
        key=fixed_rsa_key(),
        method="POST",
        target="/v3/pay/transactions/codepay",
        body=BODY,
        timestamp=TS,
        nonce=NONCE,
    )
    assert header == (
        f'WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="{NONCE}",'
        f'signature="{EXPECTED_SIGNATURE}",timestamp="{TS}",serial_no="{SERIAL}"'
    )
    message = request_message("POST", "/v3/pay/transactions/codepay", TS, NONCE, BODY)
    assert base64.b64decode(EXPECTED_SIGNATURE) == textbook_sha256_rsa(fixed_rsa_key(), message)
    assert parse_authorization(header) == {
        "mchid": "1900000109",
        "nonce_str": NONCE,
        "signature": EXPECTED_SIGNATURE,
        "timestamp": TS,
        "serial_no": SERIAL,
    }


@pytest.mark.parametrize(
    "header",
    [
        'WECHATPAY2-SHA256-RSA mchid="1",nonce_str="n",signature="s",timestamp="1",serial_no="x"',
        'WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",signature="s",timestamp="1"',
        'WECHATPAY2-SHA256-RSA2048 mchid="1",mchid="2",nonce_str="n",signature="s",'
        'timestamp="1",serial_no="x"',
        "WECHATPAY2-SHA256-RSA2048 mchid=1,nonce_str=n,signature=s,timestamp=1,serial_no=x",
        "",
    ],
)
def test_malformed_authorization_headers_are_not_parsed(header: str) -> None:
    assert parse_authorization(header) is None


def signed(platform: rsa.RSAPrivateKey, body: bytes, now: int, **kw: object) -> dict[str, str]:
    headers = signed_headers(platform, key_serial(platform.public_key()), body, timestamp=now, **kw)  # type: ignore[arg-type]
    return {k.lower(): v for k, v in headers.items()}


def test_a_fresh_signed_answer_passes_once(platform: rsa.RSAPrivateKey) -> None:
    v, body, now = verifier(platform), b'{"trade_state":"SUCCESS"}', 1_700_000_000
    headers = signed(platform, body, now - MAX_SKEW_S)
    v.check(headers, body, now=now)
    with pytest.raises(SignatureRefused, match="replayed"):
        v.check(headers, body, now=now)


@pytest.mark.parametrize("skew", [MAX_SKEW_S + 1, -(MAX_SKEW_S + 1), 3600])
def test_stale_answers_are_refused(platform: rsa.RSAPrivateKey, skew: int) -> None:
    now, body = 1_700_000_000, b"{}"
    with pytest.raises(SignatureRefused, match="stale"):
        verifier(platform).check(signed(platform, body, now - skew), body, now=now)


def test_unsigned_tampered_foreign_and_misnamed_answers_are_refused(
    platform: rsa.RSAPrivateKey,
) -> None:
    now, body = 1_700_000_000, b'{"trade_state":"PAYERROR"}'
    v = verifier(platform)
    with pytest.raises(SignatureRefused, match="unsigned"):
        v.check({}, body, now=now)
    with pytest.raises(SignatureRefused, match="does not verify"):
        v.check(signed(platform, body, now), body.replace(b"PAYERROR", b"SUCCESS"), now=now)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = signed(stranger, body, now) | {"wechatpay-serial": key_serial(platform.public_key())}
    with pytest.raises(SignatureRefused, match="does not verify"):
        v.check(forged, body, now=now)
    with pytest.raises(SignatureRefused, match="serial"):
        v.check(signed(stranger, body, now), body, now=now)
    for ts in ("soon", "\u00b2", "\u0661" * 10):  # superscript two, Arabic-Indic ones
        with pytest.raises(SignatureRefused, match="not a number"):
            v.check(signed(platform, body, now) | {"wechatpay-timestamp": ts}, body, now=now)


def test_nonce_memory_forgets_after_twice_the_window() -> None:
    memory = NonceMemory()
    assert memory.first_time("a", 100, 100)
    assert not memory.first_time("a", 100, 100 + MAX_SKEW_S)
    assert memory.first_time("b", 100 + 3 * MAX_SKEW_S, 100 + 3 * MAX_SKEW_S)
    assert memory.first_time("a", 100 + 3 * MAX_SKEW_S, 100 + 3 * MAX_SKEW_S)


def resource(plain: dict[str, object], *, aad: str = "transaction") -> dict[str, str]:
    return encrypt_resource(KEY32, plain, associated_data=aad, original_type="transaction")


def test_resource_round_trip() -> None:
    sealed = resource({"out_trade_no": "r1", "trade_state": "SUCCESS", "note": "支付"})
    assert sealed["algorithm"] == "AEAD_AES_256_GCM" and len(sealed["nonce"]) == 12
    assert decrypt_resource(KEY32, sealed) == {
        "out_trade_no": "r1",
        "trade_state": "SUCCESS",
        "note": "支付",
    }
    # The tag is the last 16 bytes of the ciphertext.
    assert len(base64.b64decode(sealed["ciphertext"])) == len(json.dumps(
        {"out_trade_no": "r1", "trade_state": "SUCCESS", "note": "支付"},
        ensure_ascii=False, separators=(",", ":")).encode()) + 16  # fmt: skip


def flip(sealed: dict[str, str]) -> dict[str, str]:
    raw = bytearray(base64.b64decode(sealed["ciphertext"]))
    raw[-1] ^= 1
    return sealed | {"ciphertext": base64.b64encode(bytes(raw)).decode()}


@pytest.mark.parametrize(
    ("spoil", "key"),
    [
        (flip, KEY32),
        (lambda s: s, b"X" * 32),
        (lambda s: s | {"associated_data": "refund"}, KEY32),
        (lambda s: s | {"algorithm": "AES_128_CBC"}, KEY32),
        (lambda s: s | {"ciphertext": "!!not base64!!"}, KEY32),
        (lambda s: {k: v for k, v in s.items() if k != "nonce"}, KEY32),
    ],
)
def test_spoiled_resources_are_refused(spoil: object, key: bytes) -> None:
    with pytest.raises(DecryptionFailed) as caught:
        decrypt_resource(key, spoil(resource({"a": 1})))  # type: ignore[operator]
    assert KEY32.decode() not in str(caught.value)


def test_a_resource_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(DecryptionFailed, match="not a JSON object"):
        decrypt_resource(
            KEY32, encrypt_resource(KEY32, [1, 2], associated_data="", original_type="x")
        )  # type: ignore[arg-type]
