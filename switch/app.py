"""Wires the switch together in one place and runs it until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable

import grpc
import redis.asyncio as aioredis
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from payswitch.gateway.v1 import gateway_service_pb2
from switch import config as config_mod
from switch import logs
from switch.cards import Fingerprinter, Vault
from switch.metrics import Metrics
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
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloader = Reloader(config_path)
    loop.add_signal_handler(signal.SIGHUP, reloader.request, "SIGHUP")

    metrics = Metrics()
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

    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    servicer = GatewayServicer(
        merchants=merchants, payments=payments, store=store, hub=hub, metrics=metrics
    )
    register(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    port = server.add_insecure_port(cfg.server.listen)
    if port == 0:
        raise OSError(f"cannot listen on {cfg.server.listen}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    ready = {name: c.capabilities is not None for name, c in pool.channels.items()}
    log.info("switch serving", extra={"listen": cfg.server.listen, "port": port, "channels": ready})

    await stop.wait()
    log.info(
        "shutting down: no new calls; in-flight calls get up to the grace period",
        extra={"grace_s": cfg.server.grace_period_s},
    )
    await health_servicer.enter_graceful_shutdown()
    await server.stop(cfg.server.grace_period_s)
    await payments.drain(cfg.server.grace_period_s)
    await reconciler.stop()
    await route_state.stop()
    await risk_sync.stop()
    await hub.close()
    await pool.close()
    await client.aclose()
    await fast.close()
    log.info("switch stopped")


def serve_main(path: str) -> int:
    try:
        cfg = config_mod.load(path)
    except config_mod.ConfigError as exc:
        print(f"payswitch serve: config error: {exc}", file=sys.stderr)
        return 2
    logs.setup(cfg.server.log_level)
    uvloop.run(serve(cfg, config_path=path))
    return 0
