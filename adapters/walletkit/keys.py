"""RSA keys and secrets for wallet channels: loading (file or env), SHA256withRSA, generation."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import pathlib
import secrets
import string

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

MIN_RSA_BITS = 2048


class KeyLoadError(ValueError):
    """A key or secret could not be loaded; the message names the source, never the content."""


def read_source(source: str) -> bytes:
    """The bytes named by `source`: `env:NAME` reads an environment variable, anything else a file.

    The content is never put into an error message; only the source's name is.
    """
    if source.startswith("env:"):
        name = source[4:]
        value = os.environ.get(name)
        if not value:
            raise KeyLoadError(f"environment variable {name} is not set or empty")
        return value.encode()
    path = pathlib.Path(source.removeprefix("file:"))
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyLoadError(f"cannot read key file {path}: {exc.strerror}") from exc


def load_private_key(source: str) -> rsa.RSAPrivateKey:
    """An RSA private key (PEM, PKCS#1 or PKCS#8, or bare Base64 PKCS#8 as wallet consoles give)."""
    data = read_source(source).strip()
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(base64.b64decode(data), password=None)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise KeyLoadError(f"{_name(source)} is not a readable private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < MIN_RSA_BITS:
        raise KeyLoadError(f"{_name(source)} is not an RSA key of at least {MIN_RSA_BITS} bits")
    return key


def load_public_key(source: str) -> rsa.RSAPublicKey:
    """An RSA public key (PEM SubjectPublicKeyInfo, or bare Base64 DER as wallet consoles give)."""
    data = read_source(source).strip()
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(base64.b64decode(data))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise KeyLoadError(f"{_name(source)} is not a readable public key") from exc
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_RSA_BITS:
        raise KeyLoadError(f"{_name(source)} is not an RSA key of at least {MIN_RSA_BITS} bits")
    return key


def load_secret(source: str, length: int) -> bytes:
    """A symmetric secret of exactly `length` bytes (surrounding whitespace ignored)."""
    data = read_source(source).strip()
    if len(data) != length:
        raise KeyLoadError(f"{_name(source)} must hold exactly {length} bytes, not {len(data)}")
    return data


def _name(source: str) -> str:
    return f"environment variable {source[4:]}" if source.startswith("env:") else source


def sign_sha256_rsa(key: rsa.RSAPrivateKey, data: bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5) over `data`, Base64."""
    return base64.b64encode(key.sign(data, padding.PKCS1v15(), hashes.SHA256())).decode()


def verify_sha256_rsa(key: rsa.RSAPublicKey, data: bytes, signature_b64: str) -> bool:
    """Whether `signature_b64` is a valid SHA256withRSA signature of `data` by `key`."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def key_serial(key: rsa.RSAPublicKey) -> str:
    """A stable serial for a public key (40 upper-case hex digits), in place of a cert serial."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:40].upper()


def generate_keypair(directory: pathlib.Path, prefix: str) -> None:
    """Write a fresh RSA 2048 key pair as `<prefix>_private.pem` (mode 0600) and `_public.pem`."""
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_private(directory / f"{prefix}_private.pem", private)
    (directory / f"{prefix}_public.pem").write_bytes(public)


def generate_secret(path: pathlib.Path, length: int) -> None:
    """Write a fresh random secret of `length` letters and digits (mode 0600)."""
    alphabet = string.ascii_letters + string.digits
    _write_private(path, "".join(secrets.choice(alphabet) for _ in range(length)).encode())


def _write_private(path: pathlib.Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
