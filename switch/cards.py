"""Card data rules: Luhn, what may be kept of an instrument, and keyed fingerprints (PCI DSS)."""

from __future__ import annotations

import hashlib
import hmac


def luhn_valid(number: str) -> bool:
    """Whether an all-digit string passes the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


class Fingerprinter:
    """Keyed HMAC-SHA256 over instruments and requests, so nothing readable is stored.

    A plain hash of a card number can be reversed by trying every number of a BIN; a keyed
    hash cannot without the key.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the fingerprint key must be at least 16 bytes")
        self._key = key

    def instrument(self, value: str) -> str:
        """The fingerprint of a card number or wallet code, hex."""
        return hmac.new(self._key, b"instrument:" + value.encode(), hashlib.sha256).hexdigest()

    def request(self, canonical: bytes) -> str:
        """The fingerprint of a canonical request, for idempotency-key reuse detection."""
        return hmac.new(self._key, b"request:" + canonical, hashlib.sha256).hexdigest()


def mask(number: str) -> str:
    """A card number as it may be shown or logged: BIN, stars, last four."""
    if len(number) < 12:
        return "*" * len(number)
    return number[:6] + "*" * (len(number) - 10) + number[-4:]
