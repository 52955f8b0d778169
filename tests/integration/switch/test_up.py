"""`payswitch up` as an operator stops it: every process it started goes with it."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import REPO
from tests.support import child_pids, free_port, gone_within, pid_alive


def _start_up(workdir: str) -> tuple[subprocess.Popen[str], list[int]]:
    up = subprocess.Popen(
        [sys.executable, "-m", "switch", "up", "--listen", f"127.0.0.1:{free_port()}"],
        cwd=REPO,
        # up keeps its directory (the logs) after it stops: this test's goes with the test.
        # A short path: the directory holds Unix sockets, whose paths must stay under 108 bytes.
        env={**os.environ, "TMPDIR": workdir},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert up.stdout is not None
    deadline = time.monotonic() + 90
    lines = []
    while time.monotonic() < deadline:
        line = up.stdout.readline()
        lines.append(line)
        if "payswitch is up" in line or not line:
            break
    assert "payswitch is up" in lines[-1], "".join(lines)
    children = child_pids(up.pid)
    # Redis, the simulators, the adapter workers and the switch.
    assert len(children) >= 5, children
    return up, children


def _close(up: subprocess.Popen[str]) -> None:
    if up.stdout is not None:
        up.stdout.close()


@pytest.fixture
def workdir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="up-test-") as path:
        yield path


def test_sigterm_stops_every_process_it_started(workdir: str) -> None:
    up, children = _start_up(workdir)
    try:
        # Its Redis is bounded and never evicts (an evicted idempotency key is a double charge).
        (sock,) = pathlib.Path(workdir).glob("payswitch-up-*/redis.sock")
        with redis.Redis(unix_socket_path=str(sock), decode_responses=True) as r:
            assert int(r.config_get("maxmemory")["maxmemory"]) > 0
            assert r.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        up.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        up.send_signal(signal.SIGTERM)  # a second one while stopping must not cut it short
        assert up.wait(60) == 0
        assert gone_within(children, 10) == []
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(10)
        _close(up)
        for pid in children:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_killed_up_leaves_nothing_running(workdir: str) -> None:
    up, children = _start_up(workdir)
    try:
        up.kill()  # no cleanup runs in the process itself
        up.wait(10)
        assert gone_within(children, 30) == []
    finally:
        _close(up)
        for pid in children:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
