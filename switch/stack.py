"""`payswitch up`: the whole stack on this machine (redis, adapters, the switch) in one command.

Every process is a child of this one. Ctrl-C or SIGTERM stops them all, and so does any exit
of this process; nothing is left behind. On Linux a child also gets SIGTERM from the kernel when
this process dies without stopping it (SIGKILL, or a second signal in the middle of stopping).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from switch.listen import ListenError, check_listen

DEFAULT_API_KEY = "psk_dev_local_only"
DEFAULT_MERCHANT = "m_dev"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"{proc.args!r} exited with {proc.returncode} before listening on {port}"
            )
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {host}:{port} within {timeout}s")


@dataclass
class ChannelSpec:
    """One channel of the stack: its adapter worker, started with `adapter_args`."""

    name: str
    adapter: str
    adapter_args: list[str] = field(default_factory=list)
    priority: int = 100
    weight: int = 100
    timeout_ms: int = 5000
    rate_per_s: int = 0
    burst: int = 0
    port: int = 0


def config_toml(
    *,
    listen: str,
    redis_url: str,
    api_key: str,
    channels: Sequence[ChannelSpec],
    fingerprint_key_file: str,
    merchant: str = DEFAULT_MERCHANT,
    merchant_rate: int = 100_000,
    merchant_burst: int = 100_000,
    metrics_listen: str = "",
    grace_period_s: float = 10.0,
    extra: str = "",
) -> str:
    """The switch's config for a local stack."""
    key_hash = hashlib.sha256(api_key.encode()).hexdigest()
    lines = [
        "[server]",
        f'listen = "{listen}"',
        f'metrics_listen = "{metrics_listen}"',
        f"grace_period_s = {grace_period_s}",
        "",
        "[redis]",
        f'url = "{redis_url}"',
        "",
        "[security]",
        f'fingerprint_key_file = "{fingerprint_key_file}"',
        "",
        "[[merchants]]",
        f'id = "{merchant}"',
        f'api_key_sha256 = "{key_hash}"',
        f"rate_per_s = {merchant_rate}",
        f"burst = {merchant_burst}",
        "",
    ]
    for c in channels:
        lines += [
            "[[channels]]",
            f'name = "{c.name}"',
            f'endpoints = ["127.0.0.1:{c.port}"]',
            f"priority = {c.priority}",
            f"weight = {c.weight}",
            f"timeout_ms = {c.timeout_ms}",
            f"rate_per_s = {c.rate_per_s}",
            f"burst = {c.burst}",
            "",
        ]
    return "\n".join(lines) + extra


PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn asking the kernel for SIGTERM when the parent dies (None off Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork, not in the child
    parent = os.getpid()

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGTERM)) != 0:
            return  # not granted: the parent's own stop is the only one
        if os.getppid() != parent:  # the parent died before the request: end now
            os._exit(1)

    return preexec


class Processes:
    """Children started by the stack, stopped together in reverse order."""

    def __init__(self, log_dir: pathlib.Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, name: str, args: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            # The kernel signals a child when the *thread* that started it ends: the stack
            # starts its children from its main thread, before any other thread exists.
            preexec_fn=_parent_death_signal(),
        )
        log.close()
        self.procs.append((name, proc))
        return proc

    def stop_all(self, timeout: float = 15.0) -> None:
        """Stop the newest first (the switch before its adapters, adapters before Redis).

        From here on (in the main thread) the process ignores Ctrl-C and SIGTERM: it is on its
        way out, and a second signal must neither cut the stop short nor kill it on the way."""
        if threading.current_thread() is threading.main_thread():
            for sig in _STOP_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self.procs.clear()


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def _memory_bytes() -> int:
    """The machine's memory, or the container's limit (cgroup v2 memory.max) when lower."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        limit = pathlib.Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return total
    return min(total, int(limit)) if limit.isdigit() else total


def start_redis(procs: Processes, workdir: pathlib.Path) -> str:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError(
            "redis-server is not installed (apt-get install redis-server), or pass --redis-url"
        )
    port = free_port()
    # The switch talks to its local Redis over a Unix socket: a write there costs a fraction of
    # one through the loopback TCP stack, and the hot path writes twice per payment. The TCP
    # port stays open for redis-cli and tools.
    sock = workdir / "redis.sock"
    # Bounded, and never evicting: a payment or idempotency key silently dropped would break
    # exactly-once. At the bound Redis refuses writes and the switch answers UNAVAILABLE. A
    # payment keeps 2.5-4 KB for its 30-day TTL, so a long bench run at capacity grows Redis by
    # gigabytes an hour; half the machine's memory stops that short of the kernel's OOM killer.
    maxmemory = _memory_bytes() // 2
    proc = procs.start(
        "redis",
        [
            exe,
            "--maxmemory",
            str(maxmemory),
            "--maxmemory-policy",
            "noeviction",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
    )
    wait_for_port("127.0.0.1", port, 10, proc)
    return f"unix://{sock}?db=0"


def default_channels(procs: Processes, workdir: pathlib.Path) -> list[ChannelSpec]:
    """The local default: every built-in channel, each real one with its upstream simulator.

    Routing then sends USD, EUR, GBP and JPY cards to the sandbox (priority 10, the bench's
    channel), CNY cards to the ISO 8583 card channel, and wallet payments to the Alipay-style
    and WeChat-Pay-style channels. Keys for the wallets are made fresh in the work folder.
    """
    acquirer = free_port()
    sim = procs.start(
        "upstream-acquirer",
        python_module("adapters.card.simulator", "--listen", f"127.0.0.1:{acquirer}"),
    )
    wait_for_port("127.0.0.1", acquirer, 20, sim)

    alipay_keys, wechat_keys = workdir / "alipay-keys", workdir / "wechat-keys"
    for module, folder in (
        ("adapters.alipay.simulator", alipay_keys),
        ("adapters.wechat.simulator", wechat_keys),
    ):
        subprocess.run(
            python_module(module, "--generate-keys", str(folder)), check=True, capture_output=True
        )
    alipay_port, wechat_port = free_port(), free_port()
    sim = procs.start(
        "upstream-alipay",
        python_module(
            "adapters.alipay.simulator",
            "--listen",
            f"127.0.0.1:{alipay_port}",
            "--app-id",
            ALIPAY_APP_ID,
            "--app-public-key",
            str(alipay_keys / "app_public.pem"),
            "--platform-private-key",
            str(alipay_keys / "platform_private.pem"),
        ),
    )
    wait_for_port("127.0.0.1", alipay_port, 20, sim)
    sim = procs.start(
        "upstream-wechat",
        python_module(
            "adapters.wechat.simulator",
            "--listen",
            f"127.0.0.1:{wechat_port}",
            "--mchid",
            WECHAT_MCHID,
            "--appid",
            WECHAT_APPID,
            "--merchant-public-key",
            str(wechat_keys / "merchant_public.pem"),
            "--platform-private-key",
            str(wechat_keys / "platform_private.pem"),
            "--apiv3-key",
            str(wechat_keys / "apiv3.key"),
        ),
    )
    wait_for_port("127.0.0.1", wechat_port, 20, sim)
    return [
        ChannelSpec(
            name="sandbox",
            adapter="sandbox",
            priority=10,
            adapter_args=["--methods", "card", "--currencies", "USD,EUR,GBP,JPY"],
        ),
        ChannelSpec(
            name="card",
            adapter="card",
            priority=20,
            adapter_args=[
                "--acquirer",
                f"127.0.0.1:{acquirer}",
                "--terminal-id",
                "TERM0001",
                "--merchant-id",
                "PAYSWITCHDEV001",
                "--saf-file",
                str(workdir / "card-saf.jsonl"),
            ],
        ),
        ChannelSpec(
            name="alipay",
            adapter="alipay",
            priority=10,
            adapter_args=[
                "--gateway",
                f"http://127.0.0.1:{alipay_port}/gateway.do",
                "--app-id",
                ALIPAY_APP_ID,
                "--app-private-key",
                str(alipay_keys / "app_private.pem"),
                "--platform-public-key",
                str(alipay_keys / "platform_public.pem"),
                "--state-dir",
                str(workdir / "alipay-state"),
            ],
        ),
        ChannelSpec(
            name="wechat",
            adapter="wechat",
            priority=10,
            adapter_args=[
                "--api-base",
                f"http://127.0.0.1:{wechat_port}",
                "--mchid",
                WECHAT_MCHID,
                "--appid",
                WECHAT_APPID,
                "--merchant-private-key",
                str(wechat_keys / "merchant_private.pem"),
                "--platform-public-key",
                str(wechat_keys / "platform_public.pem"),
                "--apiv3-key",
                str(wechat_keys / "apiv3.key"),
                "--notify-listen",
                f"127.0.0.1:{free_port()}",
                "--state-dir",
                str(workdir / "wechat-state"),
            ],
        ),
    ]


ALIPAY_APP_ID = "2021000000000001"
WECHAT_MCHID = "1900000109"
WECHAT_APPID = "wxd678efh567hg6787"


@dataclass
class Stack:
    procs: Processes
    workdir: pathlib.Path
    metrics: str
    redis_url: str


@contextlib.contextmanager
def running_stack(
    *, listen: str, api_key: str, redis_url: str | None, channels: list[ChannelSpec] | None = None
) -> Iterator[Stack]:
    """Start redis (unless given), the channels' workers and the switch; stop all on exit.
    ListenError, before anything starts, when another process holds `listen`: the switch would
    refuse it too, but a check for the port opening would then find the other one."""
    check_listen(listen)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="payswitch-up-"))
    procs = Processes(workdir)
    try:
        url = redis_url or start_redis(procs, workdir)
        specs = channels if channels is not None else default_channels(procs, workdir)
        for spec in specs:
            spec.port = free_port()
            proc = procs.start(
                f"adapter-{spec.name}",
                python_module(
                    "switch",
                    "adapter",
                    spec.adapter,
                    "--listen",
                    f"127.0.0.1:{spec.port}",
                    # Operations reach a local worker over a Unix socket (see start_redis).
                    "--exchange-listen",
                    f"unix:{workdir / spec.name}.exchange",
                    *spec.adapter_args,
                ),
            )
            wait_for_port("127.0.0.1", spec.port, 20, proc)
        key_file = workdir / "fingerprint.key"
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
        cfg = workdir / "switch.toml"
        metrics = f"127.0.0.1:{free_port()}"
        cfg.write_text(
            config_toml(
                listen=listen,
                redis_url=url,
                api_key=api_key,
                channels=specs,
                fingerprint_key_file=str(key_file),
                metrics_listen=metrics,
            )
        )
        host, _, port = listen.rpartition(":")
        proc = procs.start("switch", python_module("switch", "serve", "--config", str(cfg)))
        wait_for_port(host.strip("[]") or "127.0.0.1", int(port), 30, proc)
        yield Stack(procs=procs, workdir=workdir, metrics=metrics, redis_url=url)
    finally:
        procs.stop_all()


def up_main(*, listen: str, api_key: str | None, redis_url: str | None, traffic_s: float) -> int:
    key = api_key or DEFAULT_API_KEY
    stop = {"now": False}

    def _on_signal(signum: int, frame: object) -> None:
        if stop["now"]:
            return  # already stopping: a second SIGTERM must not cut the stop short
        stop["now"] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_signal)
    try:
        with running_stack(listen=listen, api_key=key, redis_url=redis_url) as stack:
            procs, workdir = stack.procs, stack.workdir
            print(f"payswitch is up: Gateway on {listen} (logs in {workdir})")
            print(f"  Redis:   {stack.redis_url}   metrics: http://{stack.metrics}/metrics")
            print(f"  API key: {key}   (send as metadata 'authorization: Bearer {key}')")
            print(
                f"  try:     buf curl --protocol grpc --http2-prior-knowledge --list-methods http://{listen}"
            )
            if traffic_s > 0:
                from switch.demo import run_demo

                # Where the time goes: the switch's, Redis's and the sandbox worker's CPU.
                started = dict(procs.procs)
                labels = {"switch": "switch", "redis": "redis", "adapter-sandbox": "sandbox"}
                watch = {label: started[n].pid for n, label in labels.items() if n in started}
                return run_demo(target=listen, api_key=key, seconds=traffic_s, watch=watch)
            print("Ctrl-C stops everything.")
            while not stop["now"]:
                for name, proc in procs.procs:
                    if proc.poll() is not None:
                        print(
                            f"{name} exited with {proc.returncode}; stopping "
                            f"(see {workdir}/{name}.log)"
                        )
                        return 1
                time.sleep(0.5)
    except KeyboardInterrupt:
        print("stopping...")
    except ListenError as exc:
        print(
            f"payswitch up: {exc}. Is another payswitch up running? Stop it, or give this one "
            "another address with --listen HOST:PORT.",
            file=sys.stderr,
        )
        return 1
    return 0
