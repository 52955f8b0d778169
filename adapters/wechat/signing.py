"""WeChat Pay API v3 signatures: Authorization header, signed answers, AES-256-GCM resources."""

from __future__ import annotations

import base64
import binascii
import collections
import json
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.walletkit.keys import sign_sha256_rsa, verify_sha256_rsa

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
MAX_SKEW_S = 300
APIV3_KEY_BYTES = 32
_ALPHABET = string.ascii_uppercase + string.digits
_PARAM = re.compile(r'\s*([a-z_]+)="([^"]*)"\s*')


def new_nonce() -> str:
    """A fresh 32-character nonce."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(32))


def request_message(method: str, target: str, timestamp: str, nonce: str, body: str) -> bytes:
    """What a request signature covers: METHOD, PATH?QUERY, time, nonce and body, one a line."""
    return f"{method}\n{target}\n{timestamp}\n{nonce}\n{body}\n".encode()


def answer_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What the platform's signature of an answer or a notification covers."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def authorization(
    *,
    mchid: str,
    serial_no: str,
    key: rsa.RSAPrivateKey,
    method: str,
    target: str,
    body: str,
    timestamp: str,
    nonce: str,
) -> str:
    """The `Authorization` header value for one request."""
    signature = sign_sha256_rsa(key, request_message(method, target, timestamp, nonce, body))
    return (
        f'{SCHEMA} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def parse_authorization(header: str) -> dict[str, str] | None:
    """The parameters of an Authorization header, or None when it is not of this schema."""
    schema, _, rest = header.partition(" ")
    if schema != SCHEMA:
        return None
    params: dict[str, str] = {}
    for part in rest.split(","):
        match = _PARAM.fullmatch(part)
        if match is None or match.group(1) in params:
            return None
        params[match.group(1)] = match.group(2)
    needed = {"mchid", "nonce_str", "signature", "timestamp", "serial_no"}
    return params if needed <= params.keys() else None


def signed_headers(
    key: rsa.RSAPrivateKey, serial: str, body: bytes, *, timestamp: int, nonce: str | None = None
) -> dict[str, str]:
    """The platform's signature headers for `body` (used by the simulator)."""
    nonce = nonce or new_nonce()
    ts = str(timestamp)
    return {
        "Wechatpay-Timestamp": ts,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": sign_sha256_rsa(key, answer_message(ts, nonce, body)),
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": SCHEMA,
    }


class SignatureRefused(Exception):
    """A signed answer or notification failed a check; the message says which, nothing secret."""


class NonceMemory:
    """Nonces of accepted answers, kept for twice the allowed skew, so a replay is refused."""

    def __init__(self, *, capacity: int = 200_000) -> None:
        self._seen: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._capacity = capacity

    def first_time(self, nonce: str, timestamp: int, now: int) -> bool:
        """Remember `nonce`; False when it was seen already within the window."""
        while self._seen and (
            len(self._seen) >= self._capacity
            or next(iter(self._seen.values())) < now - 2 * MAX_SKEW_S
        ):
            self._seen.popitem(last=False)
        if nonce in self._seen:
            return False
        self._seen[nonce] = max(timestamp, now)
        return True


@dataclass(frozen=True, slots=True)
class PlatformVerifier:
    """Checks the platform's signature on answers and notifications."""

    key: rsa.RSAPublicKey
    serial: str
    nonces: NonceMemory

    def check(self, headers: Mapping[str, str], body: bytes, *, now: int) -> None:
        """Raise SignatureRefused unless `body` is signed by the platform, fresh and new."""
        ts = headers.get("wechatpay-timestamp", "")
        nonce = headers.get("wechatpay-nonce", "")
        signature = headers.get("wechatpay-signature", "")
        serial = headers.get("wechatpay-serial", "")
        if not (ts and nonce and signature and serial):
            raise SignatureRefused("unsigned: Wechatpay-Signature headers are missing")
        if serial != self.serial:
            raise SignatureRefused(f"signed with key serial {serial[:64]!r}, not the platform's")
        if not (ts.isascii() and ts.isdigit()):
            raise SignatureRefused("Wechatpay-Timestamp is not a number")
        if abs(int(ts) - now) > MAX_SKEW_S:
            raise SignatureRefused(f"stale: Wechatpay-Timestamp is {int(ts) - now:+d} s off")
        if not verify_sha256_rsa(self.key, answer_message(ts, nonce, body), signature):
            raise SignatureRefused("Wechatpay-Signature does not verify with the platform key")
        if not self.nonces.first_time(nonce, int(ts), now):
            raise SignatureRefused("replayed: this Wechatpay-Nonce was seen already")


def encrypt_resource(
    apiv3_key: bytes, plaintext: Mapping[str, Any], *, associated_data: str, original_type: str
) -> dict[str, str]:
    """A notification resource as the platform builds it (used by the simulator)."""
    nonce = new_nonce()[:12]
    data = json.dumps(plaintext, ensure_ascii=False, separators=(",", ":")).encode()
    sealed = AESGCM(apiv3_key).encrypt(nonce.encode(), data, associated_data.encode())
    return {
        "original_type": original_type,
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(sealed).decode(),
        "associated_data": associated_data,
        "nonce": nonce,
    }


class DecryptionFailed(Exception):
    """A resource could not be decrypted or is not what it claims; never says the key."""


def decrypt_resource(apiv3_key: bytes, resource: Mapping[str, Any]) -> dict[str, Any]:
    """The plaintext JSON object of an AEAD_AES_256_GCM resource (tag = last 16 bytes)."""
    if resource.get("algorithm") != "AEAD_AES_256_GCM":
        raise DecryptionFailed(f"unsupported algorithm {str(resource.get('algorithm'))[:32]!r}")
    nonce, ciphertext = resource.get("nonce"), resource.get("ciphertext")
    associated = resource.get("associated_data") or ""
    if (
        not isinstance(nonce, str)
        or not isinstance(ciphertext, str)
        or not isinstance(associated, str)
    ):
        raise DecryptionFailed("resource lacks nonce or ciphertext")
    try:
        sealed = base64.b64decode(ciphertext, validate=True)
        plain = AESGCM(apiv3_key).decrypt(nonce.encode(), sealed, associated.encode())
        value = json.loads(plain)
    except (binascii.Error, InvalidTag, ValueError) as exc:
        raise DecryptionFailed(f"cannot decrypt the resource: {type(exc).__name__}") from exc
    if not isinstance(value, dict):
        raise DecryptionFailed("decrypted resource is not a JSON object")
    return value
