"""h2load (nghttp2's load generator, in C) driving a gRPC method with a pre-framed body."""

from __future__ import annotations

import math
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

INSTALL_HINT = "h2load is missing: apt-get install nghttp2-client"

_FINISHED = re.compile(r"finished in ([\d.]+)s, ([\d.]+) req/s")
_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored"
)
_REQUEST_TIME = re.compile(
    r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)"
)
_UNIT_US = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}


class H2loadError(RuntimeError):
    """h2load is missing, failed, or printed something this module cannot read."""


@dataclass(frozen=True, slots=True)
class H2loadResult:
    """What h2load reported for one run."""

    rate: float
    seconds: float
    done: int
    succeeded: int
    failed: int
    errored: int
    mean_us: float
    max_us: float
    command: str

    def as_dict(self) -> dict[str, object]:
        return {
            "rate": self.rate,
            "seconds": self.seconds,
            "done": self.done,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "errored": self.errored,
            "mean_us": self.mean_us,
            "max_us": self.max_us,
            "command": self.command,
        }


def available() -> bool:
    """Whether h2load is on PATH."""
    return shutil.which("h2load") is not None


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: flag 0 (not compressed), 4-byte big-endian length."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def shape(concurrency: int, connections: int) -> tuple[int, int]:
    """(connections, streams per connection) giving at least `concurrency` calls in flight."""
    connections = max(1, connections)
    return connections, max(1, math.ceil(concurrency / connections))


def command(
    *,
    url: str,
    body_path: str,
    seconds: float,
    warmup_s: float,
    connections: int,
    streams: int,
    headers: tuple[str, ...] = (),
) -> list[str]:
    """The h2load command line for a timed run of unary gRPC calls."""
    exe = shutil.which("h2load")
    if exe is None:
        raise H2loadError(INSTALL_HINT)
    args = [
        exe,
        "--duration",
        f"{round(seconds * 1000)}ms",
        "--warm-up-time",
        f"{round(warmup_s * 1000)}ms",
        "--clients",
        str(connections),
        "--max-concurrent-streams",
        str(streams),
        "--threads",
        "1",
        "--data",
        body_path,
        "--header",
        "content-type: application/grpc",
        "--header",
        "te: trailers",
    ]
    for header in headers:
        args += ["--header", header]
    return [*args, url]


def parse(output: str, cmd: str = "") -> H2loadResult:
    """The figures from h2load's summary text."""
    finished = _FINISHED.search(output)
    requests = _REQUESTS.search(output)
    if finished is None or requests is None:
        raise H2loadError(f"cannot read h2load's output:\n{output[-2000:]}")
    mean_us = max_us = 0.0
    timing = _REQUEST_TIME.search(output)
    if timing is not None:
        max_us = float(timing.group(3)) * _UNIT_US[timing.group(4)]
        mean_us = float(timing.group(5)) * _UNIT_US[timing.group(6)]
    return H2loadResult(
        rate=float(finished.group(2)),
        seconds=float(finished.group(1)),
        done=int(requests.group(3)),
        succeeded=int(requests.group(4)),
        failed=int(requests.group(5)),
        errored=int(requests.group(6)),
        mean_us=round(mean_us, 1),
        max_us=round(max_us, 1),
        command=cmd,
    )


def run(
    *,
    address: str,
    path: str,
    message: bytes,
    seconds: float,
    warmup_s: float,
    concurrency: int,
    connections: int,
    headers: tuple[str, ...] = (),
) -> H2loadResult:
    """Drive `path` on the plain-text gRPC server at `address` with `message` for `seconds`."""
    conns, streams = shape(concurrency, connections)
    with tempfile.NamedTemporaryFile(prefix="h2load-body-", suffix=".bin") as body:
        body.write(grpc_frame(message))
        body.flush()
        cmd = command(
            url=f"http://{address}{path}",
            body_path=body.name,
            seconds=seconds,
            warmup_s=warmup_s,
            connections=conns,
            streams=streams,
            headers=headers,
        )
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=seconds + warmup_s + 60, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise H2loadError(f"h2load did not finish: {' '.join(cmd)}") from exc
    if done.returncode != 0:
        raise H2loadError(f"h2load exited with {done.returncode}:\n{done.stderr or done.stdout}")
    shown = shlex.join(["h2load", *cmd[1:]]).replace(body.name, "BODY.bin")
    return parse(done.stdout, shown)
