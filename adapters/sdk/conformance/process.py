"""A worker as a real child process on a free port, ready once its health says SERVING."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from types import TracebackType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_serving(
    target: str, *, timeout_s: float = 15.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until the grpc.health.v1 service at `target` answers SERVING."""
    deadline = time.monotonic() + timeout_s
    request = health_pb2.HealthCheckRequest()
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode} before serving")
            with contextlib.suppress(grpc.RpcError):
                reply = stub.Check(request, timeout=0.5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{target} was not SERVING within {timeout_s} s")
            time.sleep(0.05)


class WorkerProcess:
    """Runs `command --listen 127.0.0.1:PORT` and waits until it serves; stop() is SIGTERM.

    Use it as a context manager; `target` is the address to point clients at, `exit_code` is
    set once the process has stopped.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        port: int = 0,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        ready_timeout_s: float = 15.0,
    ) -> None:
        self.port = port or free_port()
        self.target = f"127.0.0.1:{self.port}"
        self._command = [*command, "--listen", self.target]
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._ready_timeout_s = ready_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None

    def start(self) -> WorkerProcess:
        self.proc = subprocess.Popen(self._command, env=self._env, cwd=self._cwd)
        try:
            wait_serving(self.target, timeout_s=self._ready_timeout_s, proc=self.proc)
        except BaseException:
            self.stop()
            raise
        return self

    def signal(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout_s: float = 15.0) -> int:
        """Wait for the process to exit (killing it past `timeout_s`); its exit code."""
        assert self.proc is not None, "not started"
        try:
            self.exit_code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.exit_code = self.proc.wait(5)
        return self.exit_code

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM, then wait for the exit; returns the exit code."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None and self.exit_code is None:
            self.stop()
