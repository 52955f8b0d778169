"""Real servers for the harness's runs: the echo baseline and the fake Gateway, each a process."""

from __future__ import annotations

import datetime
import ipaddress
import pathlib
import subprocess
from collections.abc import Callable, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import spawn, stop_process

FAKE_GATEWAY = pathlib.Path(__file__).with_name("fake_gateway.py")
API_KEY = "bench-test-key"


def start_server(args: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    proc = spawn(args, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if " on " not in line:
        stop_process(proc)
        proc.stdout.close()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[1].strip()


@pytest.fixture
def echo_address() -> Iterator[str]:
    """HOST:PORT of a bare echo server (python -m bench.baseline)."""
    proc, address = start_server(["-m", "bench.baseline", "--listen", "127.0.0.1:0"])
    try:
        yield address
    finally:
        stop_process(proc)
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.fixture
def fake_gateway() -> Iterator[Callable[..., str]]:
    """Start fake Gateways: call with extra flags (--api-key K, --cert C --key K); HOST:PORT."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*flags: str) -> str:
        proc, address = start_server([str(FAKE_GATEWAY), "--listen", "127.0.0.1:0", *flags])
        procs.append(proc)
        return address

    try:
        yield start
    finally:
        for proc in procs:
            stop_process(proc)
            assert proc.stdout is not None
            proc.stdout.close()


@pytest.fixture
def tls_files(tmp_path: pathlib.Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = tmp_path / "cert.pem"
    key_path = tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)
