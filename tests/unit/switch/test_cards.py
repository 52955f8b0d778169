"""Fingerprints are keyed HMAC-SHA256 values that stay the same across releases: block lists,
velocity windows and idempotency records hold them."""

from __future__ import annotations

import hashlib
import hmac

from switch.cards import Fingerprinter

KEY = bytes(range(32))


def _by_the_book(prefix: bytes, value: bytes) -> str:
    return hmac.new(KEY, prefix + value, hashlib.sha256).hexdigest()


def test_fingerprints_are_hmac_sha256_of_kind_and_value_and_do_not_leak_state() -> None:
    fp = Fingerprinter(KEY)
    for number in ("4242424242424242", "4000000000000002", ""):
        assert fp.instrument(number) == _by_the_book(b"instrument:", number.encode())
    # The same value twice gives the same fingerprint: no call changes the keyed state.
    assert fp.instrument("4242424242424242") == fp.instrument("4242424242424242")
    assert fp.request(b"Authorize\x00abc") == _by_the_book(b"request:", b"Authorize\x00abc")
    assert fp.wallet_buyer(auth_code="2888", buyer_id="u1") == _by_the_book(b"buyer:", b"u1")
    assert fp.wallet_buyer(auth_code="2888", buyer_id="") == _by_the_book(b"instrument:", b"2888")
    # Another key, other values.
    assert Fingerprinter(bytes(32)).instrument("4242424242424242") != fp.instrument(
        "4242424242424242"
    )
