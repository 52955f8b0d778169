"""Card data rules: Luhn, what may be kept of an instrument, and keyed fingerprints (PCI DSS)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

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
        self._instrument = hmac.new(key, b"instrument:", "sha256")
        self._buyer = hmac.new(key, b"buyer:", "sha256")
        self._request = hmac.new(key, b"request:", "sha256")

    @staticmethod
    def _continue(keyed: hmac.HMAC, value: bytes) -> str:
        h = keyed.copy()
        h.update(value)
        return h.hexdigest()

    def instrument(self, value: str) -> str:
        """The fingerprint of a card number or wallet code, hex."""
        return self._continue(self._instrument, value.encode())

    def wallet_buyer(self, *, auth_code: str, buyer_id: str) -> str:
        """What risk control knows a wallet buyer by: the buyer's id at the wallet when the
        caller sends one (payment codes are one-time), else the payment code."""
        if buyer_id:
            return self._continue(self._buyer, buyer_id.encode())
        return self.instrument(auth_code)

    def request(self, canonical: bytes) -> str:
        """The fingerprint of a canonical request, for idempotency-key reuse detection."""
        return self._continue(self._request, canonical)


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
