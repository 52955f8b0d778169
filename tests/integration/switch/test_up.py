"""`payswitch up` as an operator stops it: every process it started goes with it."""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import REPO
from tests.support import child_pids, free_port, gone_within, pid_alive


def _start_up(
    workdir: str, *args: str, cwd: str | pathlib.Path = REPO
) -> tuple[subprocess.Popen[str], list[int], list[str]]:
    up = subprocess.Popen(
        [sys.executable, "-m", "switch", "up", "--listen", f"127.0.0.1:{free_port()}", *args],
        cwd=cwd,
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
    return up, children, lines


def _close(up: subprocess.Popen[str]) -> None:
    if up.stdout is not None:
        up.stdout.close()


@pytest.fixture
def workdir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="up-test-") as path:
        yield path


def test_sigterm_stops_every_process_it_started(workdir: str) -> None:
    up, children, _ = _start_up(workdir)
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
    up, children, _ = _start_up(workdir)
    try:
        up.kill()  # no cleanup runs in the process itself
        up.wait(10)
        assert gone_within(children, 30) == []
    finally:
        _close(up)
        for pid in children:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.timeout(300)  # the stack's start, the tour, a 5-s calibration, 3 s of load
def test_up_with_traffic_tours_the_flows_then_reports_where_the_time_goes(workdir: str) -> None:
    # The README's main command (`make up` runs `payswitch up --traffic 15`), shortened: what a
    # newcomer reads at its end. Run from an empty directory, so the bench report lands there.
    up, children, lines = _start_up(workdir, "--traffic", "2", cwd=workdir)
    try:
        rest, _ = up.communicate(timeout=240)
    finally:
        if up.poll() is None:
            up.kill()
            up.communicate(timeout=10)
    out = "".join(lines) + rest
    assert up.returncode == 0, out
    # The tour: an idempotent replay, a reused key, a bad request naming its fields.
    assert re.search(r"the same capture again \(replayed\)\s+-> CAPTURED", out), out
    assert re.search(r"same key K, different amount\s+-> FAILED_PRECONDITION", out), out
    assert "fields=amount.amount_minor,payment_method.card.number" in out, out
    # The load: every payment captured, none failed.
    outcome = re.search(r"Authorize/authorize\s+OK=(\d+)\s+CAPTURED=(\d+)\n", out)
    assert outcome is not None and outcome[1] == outcome[2] and int(outcome[1]) > 0, out
    assert ", 0 unexpected outcomes" in out, out
    # Where the time goes: the switch's, Redis's and the sandbox worker's CPU per payment, beside
    # the echo server's per call, and the switch's rate as a share of the echo ceiling.
    for process in ("switch", "redis", "sandbox"):
        row = re.search(rf"^{process}\s+([\d,]+) us\s+(\d+\.\d\d)\s", out, re.MULTILINE)
        assert row is not None and int(row[1].replace(",", "")) > 0, out
    assert re.search(r"CPU per call: echo server [\d,]+ us", out), out
    assert re.search(r"target at \d+\.\d% of the echo ceiling", out), out
    (report,) = pathlib.Path(workdir).glob("run-*.local.json")
    assert json.loads(report.read_text())["config"]["watch"] == ["switch", "redis", "sandbox"]
    # It stops everything it started once the figures are out.
    assert gone_within(children, 10) == []


def test_a_second_up_on_a_taken_address_refuses_and_starts_nothing(workdir: str) -> None:
    # Another process (here a plain listener; in practice an earlier `payswitch up`) holds the
    # address. A second up used to start everything, see its switch refuse the port, find the
    # port open anyway and send its traffic to the other one.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        up = subprocess.run(
            [sys.executable, "-m", "switch", "up", "--listen", address, "--traffic", "1"],
            cwd=REPO,
            env={**os.environ, "TMPDIR": workdir},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert up.returncode == 1, up.stdout + up.stderr
    assert f"cannot listen on {address}" in up.stderr
    assert "another payswitch up" in up.stderr
    assert "payswitch is up" not in up.stdout
    assert list(pathlib.Path(workdir).glob("payswitch-up-*")) == []  # nothing was started
