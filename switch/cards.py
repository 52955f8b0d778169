"""Card data rules: Luhn, what may be kept of an instrument, and keyed fingerprints (PCI DSS)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Protocol, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.sdk.convert import luhn_valid

__all__ = ["Fingerprinter", "luhn_valid"]


class Fingerprinter:
    """Keyed HMAC-SHA256 over instruments and requests, so nothing readable is stored.

    A plain hash of a card number can be reversed by trying every number of a BIN; a keyed
    hash cannot without the key.
    """

    __slots__ = ("_buyer", "_instrument", "_request")

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the fingerprint key must be at least 16 bytes")
        # Each kind's prefix is keyed once, and a fingerprint continues a copy of that state (what
        # HMAC's copy() is for): the same values as hmac.digest over prefix + value, at about
        # two thirds of its cost, with two fingerprints per authorization.
        self._instrument = _keyed(key, b"instrument:")
        self._buyer = _keyed(key, b"buyer:")
        self._request = _keyed(key, b"request:")

    def instrument(self, value: str) -> str:
        """The fingerprint of a card number or wallet code, hex."""
        h = self._instrument.copy()
        h.update(value.encode())
        return h.hexdigest()

    def wallet_buyer(self, *, auth_code: str, buyer_id: str) -> str:
        """What risk control knows a wallet buyer by: the buyer's id at the wallet when the
        caller sends one (payment codes are one-time), else the payment code."""
        if buyer_id:
            h = self._buyer.copy()
            h.update(buyer_id.encode())
            return h.hexdigest()
        return self.instrument(auth_code)

    def request(self, canonical: bytes) -> str:
        """The fingerprint of a canonical request, for idempotency-key reuse detection."""
        h = self._request.copy()
        h.update(canonical)
        return h.hexdigest()


class _Keyed(Protocol):
    """A keyed HMAC state: hmac.HMAC, or the OpenSSL object it wraps."""

    def copy(self) -> _Keyed: ...

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


def _keyed(key: bytes, prefix: bytes) -> _Keyed:
    """HMAC-SHA256 under `key`, fed `prefix`. CPython's hmac.HMAC wraps OpenSSL's HMAC object
    (as `_hmac`) when OpenSSL has the digest; that object's copy, update and hexdigest are calls
    into C, where hmac.HMAC's go through its Python methods first: 3,400 instructions more per
    fingerprint (callgrind), two fingerprints per authorization. Any other build keeps the
    wrapper: the values are the same."""
    h = hmac.new(key, prefix, "sha256")
    inner = getattr(h, "_hmac", None)
    return cast(_Keyed, inner if inner is not None else h)


class Vault:
    """AES-256-GCM sealing of an instrument held for a short while (a payment held for risk
    review), bound to the payment it belongs to. The key is derived from the fingerprint key,
    so every switch and the admin process of one deployment share it without a new secret."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(hmac.new(key, b"vault:review-hold", hashlib.sha256).digest())

    def seal(self, plain: bytes, bound_to: str) -> str:
        nonce = secrets.token_bytes(12)  # random per seal: a nonce never repeats under a key
        sealed = self._aead.encrypt(nonce, plain, bound_to.encode())
        return base64.b64encode(nonce + sealed).decode()

    def open(self, blob: str, bound_to: str) -> bytes | None:
        """The plain bytes, or None when the blob is damaged, foreign or sealed under another
        key."""
        try:
            raw = base64.b64decode(blob, validate=True)
            return self._aead.decrypt(raw[:12], raw[12:], bound_to.encode())
        except (ValueError, InvalidTag):
            return None


def mask(number: str) -> str:
    """A card number as it may be shown or logged: BIN, stars, last four."""
    if len(number) < 12:
        return "*" * len(number)
    return number[:6] + "*" * (len(number) - 10) + number[-4:]
