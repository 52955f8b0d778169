"""The AdminService (payswitch.admin.v1): its [admin] config, its key check, and the stats reads.

Served by the analytics process on `admin.listen`, never by the switch. The stats are read from
the minute hashes switch.analytics writes, summed over the merchants, channels and minutes asked
for. Block lists, risk reviews and config reload requests are switch/riskadmin.py's work; the
servicer checks the key and turns its errors into statuses.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import pathlib
import re
import time
import tomllib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import redis.asyncio as aioredis
import redis.exceptions
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from payswitch.admin.v1 import admin_service_pb2 as pb
from payswitch.admin.v1 import admin_service_pb2_grpc as pb_grpc
from payswitch.common.v1 import money_pb2, payment_method_pb2, payment_status_pb2
from switch import analytics, errors, validation
from switch import config as config_mod
from switch.cards import Fingerprinter
from switch.config import SHA256_HEX, Config, ConfigError, _address, _get, _match, _only, _range
from switch.riskadmin import RiskDesk
from switch.store import Store

log = logging.getLogger("payswitch.admin")
R = TypeVar("R")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AdminService"].full_name
MAX_WINDOW_MINUTES = 7 * 24 * 60
BACKLOG_CAP = 10_000
_PIPELINE_CHUNK = 1000

# KEYS[1] last applied id  KEYS[2] journal  ARGV[1] cap: journal entries after the last applied.
BACKLOG_LUA = """
local last = redis.call('GET', KEYS[1]) or ''
local from = '-'
if last ~= '' then from = '(' .. last end
return #redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', tonumber(ARGV[1]))
"""


# --- config -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """The optional [admin] table; an empty key hash means AdminService is not served."""

    api_key_sha256: str = ""
    listen: str = "127.0.0.1:50061"
    retention_s: int = 7 * 86_400


def parse_admin(raw: Any) -> AdminConfig:
    if raw is None:
        return AdminConfig()
    if not isinstance(raw, dict):
        raise ConfigError("admin: must be a table ([admin])")
    _only(raw, "admin", set(AdminConfig.__slots__))
    if "api_key_sha256" not in raw:
        raise ConfigError("admin.api_key_sha256: required (the SHA-256 of the admin API key)")
    return AdminConfig(
        api_key_sha256=_get(
            raw, "admin.api_key_sha256", str, "", _match(SHA256_HEX, "64 lower-case hex digits")
        ),
        listen=_get(raw, "admin.listen", str, "127.0.0.1:50061", _address),
        retention_s=_get(raw, "admin.retention_s", int, 7 * 86_400, _range(3600, 90 * 86_400)),
    )


def load(path: str | os.PathLike[str]) -> tuple[Config, AdminConfig]:
    """The switch's config and the [admin] table, from one file. The switch's own parser does
    not know [admin] yet, so the table is taken out before the rest is handed to it."""
    p = pathlib.Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{p}: no such file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    admin = parse_admin(raw.pop("admin", None))
    return config_mod.parse(raw, base_dir=p.parent, env=os.environ), admin


# --- turning minute hashes into a GetStatsResponse (pure) ---------------------------------


def _ts(ms: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def _money(amount: int, currency: str) -> money_pb2.Money:
    return money_pb2.Money(amount_minor=amount, currency=currency)


class StatsBuilder:
    """Sums the counters of minute hashes into the response's rows, channels and series."""

    def __init__(self, channel: str = "") -> None:
        self._channel = channel
        # (merchant, channel, method, currency, op, outcome) -> [count, volume]
        self.rows: dict[tuple[str, ...], list[int]] = defaultdict(_pair)
        self.auths: dict[str, dict[str, int]] = defaultdict(_counts)
        self.declines: dict[str, dict[int, int]] = defaultdict(_counts)
        self.latency: dict[str, dict[int, int]] = defaultdict(_counts)
        # channel -> currency -> [count, volume] of approved refunds and voids
        self.refunds: dict[str, dict[str, list[int]]] = defaultdict(_pairs)
        self.voids: dict[str, dict[str, list[int]]] = defaultdict(_pairs)
        # (minute, channel) -> authorizations by outcome, and approved volume by currency
        self.series: dict[tuple[int, str], dict[str, int]] = defaultdict(_counts)
        self.series_volume: dict[tuple[int, str], dict[str, int]] = defaultdict(_counts)

    def add(self, merchant: str, minute: int, name: str, value: int) -> None:
        kind, _, rest = name.partition("|")
        parts = rest.split("|")
        channel = parts[0]
        if self._channel and channel != self._channel:
            return
        if kind in ("n", "v") and len(parts) == 5:
            _, _, currency, op, outcome = parts
            self.rows[(merchant, *parts)][0 if kind == "n" else 1] += value
            if op == "AUTHORIZE":
                if kind == "n":
                    self.auths[channel][outcome] += value
                    self.series[(minute, channel)][outcome] += value
                elif outcome == analytics.APPROVED:
                    self.series_volume[(minute, channel)][currency] += value
            elif op in ("REFUND", "VOID") and outcome == analytics.APPROVED:
                target = self.refunds if op == "REFUND" else self.voids
                target[channel][currency][0 if kind == "n" else 1] += value
        elif kind == "d" and len(parts) == 2:
            self.declines[channel][int(parts[1])] += value
        elif kind == "l" and len(parts) == 2:
            self.latency[channel][int(parts[1])] += value

    def response(self, *, start_minute: int, end_minute: int, backlog: int) -> pb.GetStatsResponse:
        out = pb.GetStatsResponse(
            start_time=_ts(start_minute * 60_000),
            end_time=_ts((end_minute + 1) * 60_000),
            backlog_entries=backlog,
        )
        for (mid, ch, method, cur, op, outcome), (count, volume) in sorted(self.rows.items()):
            out.volumes.append(
                pb.VolumeRow(
                    merchant_id=mid,
                    channel=ch,
                    method=_enum(payment_method_pb2.PaymentMethodType, method),
                    operation=_enum(payment_status_pb2.OperationType, op),
                    outcome=_enum(pb.OperationOutcome, outcome),
                    count=count,
                    volume=_money(volume, cur),
                )
            )
        channels = set(self.auths) | set(self.latency) | set(self.refunds) | set(self.voids)
        channels |= {ch for (_, ch, *_) in self.rows}
        for ch in sorted(channels):
            out.channels.append(self._channel_stats(ch))
        for minute, ch in sorted(self.series.keys() | self.series_volume.keys()):
            counts = self.series.get((minute, ch), {})
            volumes = self.series_volume.get((minute, ch), {})
            out.minutes.append(
                pb.ChannelMinute(
                    minute=_ts(minute * 60_000),
                    channel=ch,
                    approved=counts.get(analytics.APPROVED, 0),
                    declined=counts.get(analytics.DECLINED, 0),
                    failed=counts.get(analytics.FAILED, 0),
                    approved_volume=[_money(v, c) for c, v in sorted(volumes.items())],
                )
            )
        return out

    def _channel_stats(self, ch: str) -> pb.ChannelStats:
        auths = self.auths.get(ch, {})
        approved = auths.get(analytics.APPROVED, 0)
        final = approved + auths.get(analytics.DECLINED, 0) + auths.get(analytics.FAILED, 0)
        hist = self.latency.get(ch, {})
        declines = sorted(self.declines.get(ch, {}).items(), key=lambda kv: (-kv[1], kv[0]))
        return pb.ChannelStats(
            channel=ch,
            approved=approved,
            declined=auths.get(analytics.DECLINED, 0),
            failed=auths.get(analytics.FAILED, 0),
            pending=auths.get(analytics.PENDING, 0),
            approval_rate=approved / final if final else 0.0,
            latency=pb.LatencySummary(
                samples=sum(hist.values()),
                p50_us=analytics.percentile_us(hist, 0.50),
                p90_us=analytics.percentile_us(hist, 0.90),
                p99_us=analytics.percentile_us(hist, 0.99),
            ),
            declines=[pb.DeclineCount(code=code, count=n) for code, n in declines],  # type: ignore[arg-type]
            refunds=_totals(self.refunds.get(ch, {})),
            voids=_totals(self.voids.get(ch, {})),
        )


def _counts() -> defaultdict[Any, int]:
    return defaultdict(int)


def _pair() -> list[int]:
    return [0, 0]


def _pairs() -> defaultdict[str, list[int]]:
    return defaultdict(_pair)


def _totals(by_currency: dict[str, list[int]]) -> list[pb.CurrencyTotal]:
    return [
        pb.CurrencyTotal(count=n, volume=_money(v, cur))
        for cur, (n, v) in sorted(by_currency.items())
    ]


def _enum(kind: Any, name: str) -> Any:
    """The number of `name` in a proto enum whose values are prefixed with its own name
    (PaymentMethodType: PAYMENT_METHOD_TYPE_CARD); 0 (unspecified) for a name it lacks."""
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", kind.DESCRIPTOR.name).upper() + "_"
    try:
        return kind.Value(prefix + name)
    except ValueError:
        return 0


# --- Redis reads --------------------------------------------------------------------------


class StatsReader:
    """Reads the aggregates of the analytics consumer."""

    def __init__(self, *, client: aioredis.Redis, timeout_s: float = 5.0) -> None:
        self._r = client
        self._timeout_s = timeout_s
        self._backlog = client.register_script(BACKLOG_LUA)

    async def stats(
        self, *, merchants: Sequence[str], channel: str, start_minute: int, end_minute: int
    ) -> pb.GetStatsResponse:
        builder = StatsBuilder(channel)
        wanted = [(m, t) for m in merchants for t in range(start_minute, end_minute + 1)]
        backlog = 0
        try:
            # The backlog first: when it is zero, every entry journaled before this moment is
            # in the hashes read next.
            for m in merchants:
                keys = [analytics.last_key(m), Store.journal_key(m)]
                backlog += int(await self._backlog(keys=keys, args=[BACKLOG_CAP]))
            for i in range(0, len(wanted), _PIPELINE_CHUNK):
                chunk = wanted[i : i + _PIPELINE_CHUNK]
                pipe = self._r.pipeline(transaction=False)
                for m, t in chunk:
                    pipe.hgetall(analytics.bucket_key(m, t))
                for (m, t), counters in zip(chunk, await pipe.execute(), strict=True):
                    for name, value in counters.items():
                        builder.add(m, t, name, int(value))
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            raise errors.StoreUnavailable("Redis is unavailable; no stats can be read") from exc
        return builder.response(start_minute=start_minute, end_minute=end_minute, backlog=backlog)


# --- the servicer ---------------------------------------------------------------------------


class AdminServicer(pb_grpc.AdminServiceServicer):
    """payswitch.admin.v1.AdminService."""

    def __init__(
        self, *, api_key_sha256: str, merchants: Iterable[str], reader: StatsReader, desk: RiskDesk
    ) -> None:
        self._key_hash = api_key_sha256
        self._merchants = list(merchants)
        self._reader = reader
        self._desk = desk

    async def GetStats(
        self, request: pb.GetStatsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetStatsResponse:
        return await self._answer(context, lambda: self._stats(request))

    async def ListBlockListEntries(
        self, request: pb.ListBlockListEntriesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListBlockListEntriesResponse:
        return await self._answer(context, lambda: self._desk.list_blocks(request.kind))

    async def AddBlockListEntry(
        self, request: pb.AddBlockListEntryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.AddBlockListEntryResponse:
        return await self._answer(context, lambda: self._desk.add_block(request))

    async def RemoveBlockListEntry(
        self, request: pb.RemoveBlockListEntryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RemoveBlockListEntryResponse:
        return await self._answer(context, lambda: self._desk.remove_block(request))

    async def ListRiskReviews(
        self, request: pb.ListRiskReviewsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListRiskReviewsResponse:
        return await self._answer(
            context, lambda: self._desk.list_reviews(request.merchant_id, request.page_size)
        )

    async def ApproveRiskReview(
        self, request: pb.ApproveRiskReviewRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ApproveRiskReviewResponse:
        return await self._answer(
            context, lambda: self._desk.approve(request.merchant_id, request.payment_id)
        )

    async def RejectRiskReview(
        self, request: pb.RejectRiskReviewRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RejectRiskReviewResponse:
        return await self._answer(
            context, lambda: self._desk.reject(request.merchant_id, request.payment_id)
        )

    async def ReloadConfig(
        self, request: pb.ReloadConfigRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ReloadConfigResponse:
        return await self._answer(context, self._desk.reload)

    async def _answer(
        self, context: grpc.aio.ServicerContext[Any, Any], work: Callable[[], Awaitable[R]]
    ) -> R:
        """Check the admin key, run `work`, and turn a SwitchError into its rich status."""
        try:
            self.check_key(context)
            return await work()
        except errors.SwitchError as exc:
            await context.abort_with_status(rpc_status.to_status(errors.to_status(exc)))
            raise  # unreachable: abort raises

    async def _stats(self, request: pb.GetStatsRequest) -> pb.GetStatsResponse:
        problems: list[tuple[str, str]] = []
        if request.merchant_id and request.merchant_id not in self._merchants:
            problems.append(("merchant_id", f"no merchant {request.merchant_id!r} is configured"))
        if not 1 <= request.window_minutes <= MAX_WINDOW_MINUTES:
            problems.append(("window_minutes", f"must be from 1 to {MAX_WINDOW_MINUTES}"))
        if problems:
            raise errors.InvalidRequest(problems)
        end_ms = (
            request.end_time.ToMilliseconds()
            if request.HasField("end_time")
            else time.time_ns() // 1_000_000
        )
        end_minute = end_ms // 60_000
        return await self._reader.stats(
            merchants=[request.merchant_id] if request.merchant_id else self._merchants,
            channel=request.channel,
            start_minute=end_minute - request.window_minutes + 1,
            end_minute=end_minute,
        )

    def check_key(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                token = validation.bearer_token(value)
                digest = hashlib.sha256(token.encode()).hexdigest()
                if token and hmac.compare_digest(digest, self._key_hash):
                    return
                break
        raise errors.Unauthenticated(
            "missing or wrong admin API key: send 'authorization: Bearer <admin key>'"
        )


def _register(servicer: AdminServicer, server: grpc.aio.Server) -> None:
    """Add AdminService as the generated `add_..._to_server` does, but with the requests parsed
    by the switch (validation.parse), once the admin key is checked: bytes that are no request
    get INVALID_ARGUMENT, where gRPC's own deserializer answers UNKNOWN."""
    service = pb.DESCRIPTOR.services_by_name["AdminService"]
    handlers = {
        method.name: grpc.unary_unary_rpc_method_handler(
            _parsing(servicer, getattr(servicer, method.name), getattr(pb, method.input_type.name)),
            None,
            _serialize,
        )
        for method in service.methods
    }
    generic = grpc.method_handlers_generic_handler(service.full_name, handlers)
    server.add_generic_rpc_handlers((generic,))


def _serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())


def _parsing(
    servicer: AdminServicer,
    behavior: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]],
    kind: Any,
) -> Callable[[bytes, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]:
    async def handle(data: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            servicer.check_key(context)
            request = validation.parse(kind, data)
        except errors.SwitchError as exc:
            await context.abort_with_status(rpc_status.to_status(errors.to_status(exc)))
            raise  # unreachable: abort raises
        return await behavior(request, context)

    return handle


async def serve(cfg: AdminConfig, *, client: aioredis.Redis, switch: Config) -> grpc.aio.Server:
    """Start AdminService (with health and reflection) on `cfg.listen`; the caller stops it."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    merchants = [m.id for m in switch.merchants]
    desk = RiskDesk(
        client=client,
        fingerprints=Fingerprinter(switch.fingerprint_key),
        merchants=merchants,
        journal_max_len=switch.redis.journal_max_len,
    )
    servicer = AdminServicer(
        api_key_sha256=cfg.api_key_sha256,
        merchants=merchants,
        reader=StatsReader(client=client),
        desk=desk,
    )
    _register(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    if server.add_insecure_port(cfg.listen) == 0:
        raise OSError(f"cannot listen on {cfg.listen}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("admin serving", extra={"listen": cfg.listen})
    return server
