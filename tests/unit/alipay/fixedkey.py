"""A fixed RSA 2048 key for known-answer tests, derived from a seed so no key file is committed.

The primes come from a SHA-256 counter stream and a Miller-Rabin test whose bases come from the
same stream, so the key (and every PKCS#1 v1.5 signature made with it) is the same on every run
and every machine. It is a test key by construction: nothing outside tests can load it.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterator

from cryptography.hazmat.primitives.asymmetric import rsa

_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))]
# DigestInfo prefix of SHA-256 in EMSA-PKCS1-v1_5 (RFC 8017, section 9.2, note 1).
_SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")


def _stream(seed: bytes) -> Iterator[bytes]:
    counter = 0
    while True:
        yield hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        counter += 1


def _bits(stream: Iterator[bytes], bits: int) -> int:
    data = b""
    while len(data) * 8 < bits:
        data += next(stream)
    return int.from_bytes(data, "big") >> (len(data) * 8 - bits)


def _probably_prime(n: int, stream: Iterator[bytes]) -> bool:
    for p in _SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for _ in range(40):
        x = pow(2 + _bits(stream, n.bit_length()) % (n - 3), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(stream: Iterator[bytes], bits: int, e: int) -> int:
    while True:
        # The top two bits set make the product exactly 2 * bits long.
        candidate = _bits(stream, bits) | (3 << (bits - 2)) | 1
        if math.gcd(e, candidate - 1) == 1 and _probably_prime(candidate, stream):
            return candidate


@functools.cache
def fixed_rsa_key(seed: bytes = b"payswitch known-answer key 1") -> rsa.RSAPrivateKey:
    """The same RSA 2048 private key for the same seed, every time."""
    stream = _stream(seed)
    e = 65537
    p = _prime(stream, 1024, e)
    q = _prime(stream, 1024, e)
    p, q = max(p, q), min(p, q)
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=d % (p - 1),
        dmq1=d % (q - 1),
        iqmp=pow(q, -1, p),
        public_numbers=rsa.RSAPublicNumbers(e, p * q),
    )
    return numbers.private_key()


def textbook_sha256_rsa(key: rsa.RSAPrivateKey, message: bytes) -> bytes:
    """SHA256withRSA computed by hand from RFC 8017 (EMSA-PKCS1-v1_5, then m^d mod n)."""
    numbers = key.private_numbers()
    n, d = numbers.public_numbers.n, numbers.d
    k = (n.bit_length() + 7) // 8
    t = _SHA256_PREFIX + hashlib.sha256(message).digest()
    encoded = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return pow(int.from_bytes(encoded, "big"), d, n).to_bytes(k, "big")
