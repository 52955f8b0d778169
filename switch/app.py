"""Wires the switch together in one place and runs it until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import redis.asyncio as aioredis
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from adapters.sdk.logs import configure_logging
from adapters.sdk.runtime import IdleCollector, tune_gc
from payswitch.gateway.v1 import gateway_service_pb2
from switch import config as config_mod
from switch.cards import Fingerprinter, Vault
from switch.listen import ListenError, check_listen
from switch.metrics import GcWatch, LoopLagWatch, Metrics
from switch.payments import PaymentService
from switch.pipelined import PipelinedRedis
from switch.pool import Pool
from switch.reconciler import Reconciler
from switch.risk import RiskEngine
from switch.risksync import RiskSync
from switch.routestate import RouteState
from switch.routing import Router
from switch.server import GatewayServicer, register, render
from switch.store import Store
from switch.watch import WatchHub

log = logging.getLogger("payswitch.app")
SERVICE_NAME = gateway_service_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name


ReloadHook = Callable[[config_mod.Config], None]


class Reloader:
    """Reads the config file again (SIGHUP, or AdminService.ReloadConfig through Redis) and
    hands the new Config to each hook. A file that does not validate is refused: the error is
    logged and every hook keeps what it had. Only what a hook takes changes at run time (the
    risk rules, and routing: strategy, rules, fees, breaker thresholds); the rest of a new file
    (listen address, merchants, channels and their endpoints) needs a restart."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.hooks: list[ReloadHook] = []
        self._tasks: set[asyncio.Task[bool]] = set()

    def request(self, source: str) -> None:
        task = asyncio.create_task(self.reload(source))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self, source: str) -> bool:
        if self.path is None:
            log.warning(
                "config reload asked for, but no config file is known", extra={"source": source}
            )
            return False
        try:
            new = await asyncio.to_thread(config_mod.load, self.path)
        except config_mod.ConfigError as exc:
            log.error(
                "config reload refused; the running config stays",
                extra={"source": source, "error": str(exc)},
            )
            return False
        for hook in self.hooks:
            hook(new)
        log.info("config reloaded", extra={"source": source, "path": self.path})
        return True


async def serve(
    cfg: config_mod.Config, *, stop: asyncio.Event | None = None, config_path: str | None = None
) -> None:
    """Run the switch until `stop` is set (or a signal arrives), then shut down gracefully."""
    check_listen(cfg.server.listen)  # before anything starts: a taken port is refused cleanly
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloader = Reloader(config_path)
    loop.add_signal_handler(signal.SIGHUP, reloader.request, "SIGHUP")

    metrics = Metrics()
    gc_watch = GcWatch(metrics)
    gc_watch.install()
    lag_watch = LoopLagWatch(metrics)
    lag_watch.start(loop)
    if cfg.server.metrics_listen:
        metrics.serve(cfg.server.metrics_listen)
    client = aioredis.Redis.from_url(
        cfg.redis.url,
        socket_connect_timeout=cfg.redis.timeout_ms / 1000,
        max_connections=cfg.redis.max_connections,
        retry_on_timeout=False,
    )
    fast = PipelinedRedis(
        cfg.redis.url,
        timeout_s=cfg.redis.timeout_ms / 1000,
        connect_timeout_s=cfg.redis.timeout_ms / 1000,
    )
    store = Store(
        client=client,
        fast=fast,
        idempotency_ttl_s=cfg.redis.idempotency_ttl_s,
        payment_ttl_s=cfg.redis.payment_ttl_s,
        journal_max_len=cfg.redis.journal_max_len,
        in_flight_grace_ms=cfg.reconciler.in_flight_grace_ms,
        timeout_s=cfg.redis.timeout_ms / 1000,
    )
    merchants = {m.id: m for m in cfg.merchants}
    pool = Pool(cfg.channels, breaker=cfg.routing.breaker, metrics=metrics)
    hub = WatchHub(store=store, merchants=list(merchants))
    route_state = RouteState(
        client=client,
        channels=pool.channels,
        window_s=cfg.routing.success_window_s,
        min_samples=cfg.routing.success_min_samples,
        interval_ms=cfg.routing.sync_interval_ms,
        breakers=pool.breaker_states,
    )
    router = Router(pool.channels.values(), routing=cfg.routing, rates=route_state)
    # A reload swaps routing rules, strategy, fees and breaker thresholds; the channels and
    # their endpoints stay as they were started (a restart changes those).
    reloader.hooks.append(lambda new: router.reconfigure(new.routing))
    reloader.hooks.append(
        lambda new: route_state.reconfigure(
            window_s=new.routing.success_window_s, min_samples=new.routing.success_min_samples
        )
    )
    reloader.hooks.append(lambda new: pool.reconfigure_breakers(new.routing.breaker))
    risk = RiskEngine(cfg.risk)
    reloader.hooks.append(lambda new: risk.update(new.risk))
    risk_sync = RiskSync(client=client, engine=risk, on_reload=reloader.request)
    await risk_sync.start()
    idle = IdleCollector()  # garbage is collected between requests (adapters/sdk/runtime.py)
    payments = PaymentService(
        store=store,
        pool=pool,
        router=router,
        record_outcome=route_state.record,
        fingerprints=Fingerprinter(cfg.fingerprint_key),
        channels=cfg.channels,
        metrics=metrics,
        render=render,
        on_change=hub.notify,
        initial_backoff_ms=cfg.reconciler.initial_backoff_ms,
        risk=risk,
        vault=Vault(cfg.fingerprint_key),
        idle=idle,
    )
    reconciler = Reconciler(
        store=store,
        pool=pool,
        payments=payments,
        merchants=list(merchants),
        config=cfg.reconciler,
        metrics=metrics,
        review_timeout_s=lambda: risk.config.review_timeout_s,
    )
    await pool.start(on_event=reconciler.on_event)
    reconciler.start()
    route_state.start()

    servicer = GatewayServicer(
        merchants=merchants, payments=payments, store=store, hub=hub, metrics=metrics, idle=idle
    )
    health_servicer = health.aio.HealthServicer()
    servers, port = await _start_servers(cfg.server, servicer, health_servicer)
    tune_gc()  # startup is done: see adapters/sdk/runtime.py
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    ready = {name: c.capabilities is not None for name, c in pool.channels.items()}
    log.info(
        "switch serving",
        extra={
            "listen": cfg.server.listen,
            "port": port,
            "accept_loops": len(servers),
            "channels": ready,
        },
    )

    await stop.wait()
    log.info(
        "shutting down: no new calls; in-flight calls get up to the grace period",
        extra={"grace_s": cfg.server.grace_period_s},
    )
    grace = cfg.server.grace_period_s
    await _shut_down(
        [
            ("health", health_servicer.enter_graceful_shutdown, 5.0),
            ("servers", lambda: asyncio.gather(*(s.stop(grace) for s in servers)), grace + 5),
            ("payments", lambda: payments.drain(grace), grace + 5),
            ("reconciler", reconciler.stop, 5.0),
            ("routing", route_state.stop, 5.0),
            ("risk", risk_sync.stop, 5.0),
            ("watchers", hub.close, 5.0),
            ("channels", pool.close, 5.0),
            ("redis", client.aclose, 5.0),
            ("redis-hot-path", fast.close, 5.0),
        ]
    )
    gc_watch.remove()
    lag_watch.stop()
    log.info("switch stopped")


async def _shut_down(steps: list[tuple[str, Callable[[], Awaitable[object]], float]]) -> None:
    """Run each step within its limit: one that hangs is logged and left, so that SIGTERM
    always ends the process (a supervisor would kill it anyway, with less said)."""
    for name, step, limit_s in steps:
        started = time.monotonic()
        try:
            async with asyncio.timeout(limit_s):
                await step()
        except TimeoutError:
            log.error(
                "shutdown step did not finish; going on", extra={"step": name, "limit_s": limit_s}
            )
            continue
        took = time.monotonic() - started
        if took > 1.0:
            log.info("shutdown step was slow", extra={"step": name, "took_s": round(took, 2)})


async def _start_servers(
    cfg: config_mod.ServerConfig, servicer: GatewayServicer, health_servicer: Any
) -> tuple[list[grpc.aio.Server], int]:
    """`cfg.accept_loops` gRPC servers on one port, each taking new calls on its own.

    They share the port with SO_REUSEPORT; `check_listen` has made sure no other process holds
    it (one that set SO_REUSEPORT too could otherwise share it silently)."""
    unix = cfg.listen.startswith("unix:")
    loops = 1 if unix else cfg.accept_loops  # a Unix socket path cannot be shared
    host, _, port_text = cfg.listen.rpartition(":")
    port = 0 if unix else int(port_text)
    reuse = 1 if loops > 1 else 0
    servers: list[grpc.aio.Server] = []
    for _ in range(loops):
        server = grpc.aio.server(options=[("grpc.so_reuseport", reuse)])
        register(servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            [SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server
        )
        bound = server.add_insecure_port(cfg.listen if unix else f"{host}:{port}")
        if bound == 0:
            raise OSError(f"cannot listen on {cfg.listen}")
        port = bound  # port 0: the others join the port the first one got
        servers.append(server)
    for server in servers:
        await server.start()
    return servers, port


def serve_main(path: str) -> int:
    try:
        cfg = config_mod.load(path)
    except config_mod.ConfigError as exc:
        print(f"payswitch serve: config error: {exc}", file=sys.stderr)
        return 2
    configure_logging(cfg.server.log_level)
    try:
        uvloop.run(serve(cfg, config_path=path))
    except ListenError as exc:
        print(f"payswitch serve: {exc}", file=sys.stderr)
        return 1
    return 0
