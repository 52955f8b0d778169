"""Alipay RSA2: the sorted `k=v` signing string, SHA256withRSA, answers checked over raw text."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.walletkit.keys import sign_sha256_rsa, verify_sha256_rsa

_decoder = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


def signing_string(params: Mapping[str, str]) -> str:
    """Every parameter but `sign`, empty values dropped, sorted by key, joined `k=v` with `&`.

    No URL-encoding: the values are signed as they are. (Async notifications also drop
    `sign_type`; synchronous requests keep it.)
    """
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign" and v != "")


def sign_params(params: Mapping[str, str], key: rsa.RSAPrivateKey) -> str:
    """The RSA2 `sign` for a request's parameters."""
    return sign_sha256_rsa(key, signing_string(params).encode("utf-8"))


def verify_params(params: Mapping[str, str], key: rsa.RSAPublicKey) -> bool:
    """Whether the request's `sign` is valid for its other parameters."""
    signature = params.get("sign", "")
    return bool(signature) and verify_sha256_rsa(
        key, signing_string(params).encode("utf-8"), signature
    )


def response_key(method: str) -> str:
    """The answer's envelope key: `alipay.trade.pay` -> `alipay_trade_pay_response`."""
    return method.replace(".", "_") + "_response"


@dataclass(frozen=True, slots=True)
class Envelope:
    """An answer split at the top level: the business object, its exact raw text, the sign."""

    key: str
    raw: str
    body: dict[str, Any]
    sign: str | None


class MalformedEnvelope(ValueError):
    """The answer is not a JSON object of the expected shape."""


def top_level_members(text: str) -> dict[str, tuple[str, Any]]:
    """Each member of the top-level JSON object as (exact raw text, parsed value).

    The raw text is cut from the answer as received, never re-serialized, because the platform
    signs its own bytes. A repeated key is refused: it would make "the" value ambiguous.
    """
    members: dict[str, tuple[str, Any]] = {}
    i = _skip(text, 0)
    if text[i : i + 1] != "{":
        raise MalformedEnvelope("answer is not a JSON object")
    i = _skip(text, i + 1)
    if text[i : i + 1] == "}":
        return _end(text, i + 1, members)
    while True:
        if text[i : i + 1] != '"':
            raise MalformedEnvelope("expected a member name")
        try:
            name, i = _decoder.raw_decode(text, i)
            i = _skip(text, i)
            if text[i : i + 1] != ":":
                raise MalformedEnvelope("expected ':'")
            start = _skip(text, i + 1)
            value, end = _decoder.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            raise MalformedEnvelope(f"bad JSON at {exc.pos}") from exc
        if name in members:
            raise MalformedEnvelope(f"member {name!r} appears twice")
        members[name] = (text[start:end], value)
        i = _skip(text, end)
        if text[i : i + 1] == ",":
            i = _skip(text, i + 1)
        elif text[i : i + 1] == "}":
            return _end(text, i + 1, members)
        else:
            raise MalformedEnvelope("expected ',' or '}'")


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WHITESPACE:
        i += 1
    return i


def _end(text: str, i: int, members: dict[str, tuple[str, Any]]) -> dict[str, tuple[str, Any]]:
    if _skip(text, i) != len(text):
        raise MalformedEnvelope("trailing data after the JSON object")
    return members


def parse_envelope(raw: bytes, method: str) -> Envelope:
    """Split an answer to `method`; the platform answers gateway errors under `error_response`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedEnvelope("answer is not UTF-8") from exc
    members = top_level_members(text)
    for key in (response_key(method), "error_response"):
        if key in members:
            raw_value, value = members[key]
            if not isinstance(value, dict):
                raise MalformedEnvelope(f"{key} is not an object")
            sign = members.get("sign", ("", None))[1]
            if sign is not None and not isinstance(sign, str):
                raise MalformedEnvelope("sign is not a string")
            return Envelope(key=key, raw=raw_value, body=value, sign=sign)
    raise MalformedEnvelope(f"answer has no {response_key(method)}")


def envelope_is_authentic(envelope: Envelope, key: rsa.RSAPublicKey) -> bool:
    """Whether the platform signed exactly the raw text of the business object."""
    return envelope.sign is not None and verify_sha256_rsa(
        key, envelope.raw.encode("utf-8"), envelope.sign
    )


def render_envelope(name: str, body: Mapping[str, Any], key: rsa.RSAPrivateKey) -> bytes:
    """An answer as the platform writes it: `{"<name>":<object text>,"sign":"<its signature>"}`."""
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    sign = sign_sha256_rsa(key, raw.encode("utf-8"))
    return f'{{"{name}":{raw},"sign":"{sign}"}}'.encode()
