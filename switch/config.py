"""The switch's TOML configuration, parsed once into frozen dataclasses and validated at start-up.

Every problem is reported as a ConfigError naming the key, for example
`channels[1].timeout_ms: must be an integer from 1 to 600000, got 0`.
"""

from __future__ import annotations

import os
import pathlib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from switch.routeconfig import RoutingConfig

from switch.riskconfig import RiskConfig, parse_risk

T = TypeVar("T")

MERCHANT_ID = re.compile(r"^[a-z0-9_]{1,24}\Z")
CHANNEL_NAME = re.compile(r"^[a-z0-9_]{1,32}\Z")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}\Z")
ADDRESS = re.compile(r"^(unix:.+|\[?[A-Za-z0-9.:-]+\]?:[0-9]{1,5})\Z")


class ConfigError(ValueError):
    """The config file is unusable; the message names the key and the problem."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    listen: str = "127.0.0.1:50051"
    metrics_listen: str = ""
    grace_period_s: float = 10.0
    log_level: str = "INFO"
    # gRPC servers sharing `listen` in this process. A grpc.aio server takes new calls one at a
    # time (each needs several turns of the event loop), which caps a busy switch's unary rate
    # long before its CPU does; each server takes calls on its own, and the kernel spreads
    # client connections over them.
    accept_loops: int = 4


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: str = "redis://127.0.0.1:6379/0"
    timeout_ms: int = 1000
    max_connections: int = 64
    idempotency_ttl_s: int = 86_400
    payment_ttl_s: int = 30 * 86_400
    journal_max_len: int = 1_000_000


@dataclass(frozen=True, slots=True)
class MerchantConfig:
    id: str
    api_key_sha256: str
    rate_per_s: int = 1000
    burst: int = 1000
    max_amount_minor: int = 100_000_000_000


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    name: str
    endpoints: tuple[str, ...]
    priority: int = 100
    weight: int = 100
    timeout_ms: int = 5000
    rate_per_s: int = 0
    burst: int = 0


@dataclass(frozen=True, slots=True)
class ReconcilerConfig:
    interval_ms: int = 200
    initial_backoff_ms: int = 200
    max_backoff_ms: int = 30_000
    in_flight_grace_ms: int = 15_000


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig
    redis: RedisConfig
    merchants: tuple[MerchantConfig, ...]
    channels: tuple[ChannelConfig, ...]
    reconciler: ReconcilerConfig
    fingerprint_key: bytes
    routing: RoutingConfig
    risk: RiskConfig = field(default_factory=RiskConfig)


def load(path: str | os.PathLike[str], env: dict[str, str] | None = None) -> Config:
    """Read and validate a config file."""
    p = pathlib.Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{p}: no such file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    return parse(raw, base_dir=p.parent, env=os.environ if env is None else env)


def parse(raw: dict[str, Any], *, base_dir: pathlib.Path, env: Any) -> Config:
    """Validate a parsed TOML document."""
    # [admin] belongs to the analytics process (switch/admin.py parses it).
    # routeconfig builds on this module's validators, so it is imported here, not at the top.
    from switch.routeconfig import parse_routing

    known = {"server", "redis", "merchants", "channels", "reconciler", "security", "admin"}
    _only(raw, "", known | {"routing", "risk"})
    server_raw = _table(raw, "server")
    server = ServerConfig(
        listen=_get(server_raw, "server.listen", str, "127.0.0.1:50051", _address),
        metrics_listen=_get(server_raw, "server.metrics_listen", str, "", _address_or_empty),
        grace_period_s=float(
            _get(server_raw, "server.grace_period_s", (int, float), 10.0, _range(0, 600))
        ),
        log_level=_get(
            server_raw,
            "server.log_level",
            str,
            "INFO",
            _one_of("DEBUG", "INFO", "WARNING", "ERROR"),
        ),
        accept_loops=_get(server_raw, "server.accept_loops", int, 4, _range(1, 64)),
    )
    _only(server_raw, "server", set(ServerConfig.__slots__))
    redis_raw = _table(raw, "redis")
    _only(redis_raw, "redis", set(RedisConfig.__slots__))
    redis = RedisConfig(
        url=_get(redis_raw, "redis.url", str, "redis://127.0.0.1:6379/0", _redis_url),
        timeout_ms=_get(redis_raw, "redis.timeout_ms", int, 1000, _range(1, 60_000)),
        max_connections=_get(redis_raw, "redis.max_connections", int, 64, _range(1, 10_000)),
        idempotency_ttl_s=_get(
            redis_raw, "redis.idempotency_ttl_s", int, 86_400, _range(60, 30 * 86_400)
        ),
        payment_ttl_s=_get(
            redis_raw, "redis.payment_ttl_s", int, 30 * 86_400, _range(3600, 3650 * 86_400)
        ),
        journal_max_len=_get(
            redis_raw, "redis.journal_max_len", int, 1_000_000, _range(1000, 10**9)
        ),
    )
    merchants = tuple(
        _merchant(m, f"merchants[{i}]") for i, m in enumerate(_array(raw, "merchants"))
    )
    if not merchants:
        raise ConfigError("merchants: at least one [[merchants]] entry is needed")
    _unique([m.id for m in merchants], "merchants", "id")
    _unique([m.api_key_sha256 for m in merchants], "merchants", "api_key_sha256")
    channels = tuple(_channel(c, f"channels[{i}]") for i, c in enumerate(_array(raw, "channels")))
    if not channels:
        raise ConfigError("channels: at least one [[channels]] entry is needed")
    _unique([c.name for c in channels], "channels", "name")
    rec_raw = _table(raw, "reconciler")
    _only(rec_raw, "reconciler", set(ReconcilerConfig.__slots__))
    reconciler = ReconcilerConfig(
        interval_ms=_get(rec_raw, "reconciler.interval_ms", int, 200, _range(10, 60_000)),
        initial_backoff_ms=_get(
            rec_raw, "reconciler.initial_backoff_ms", int, 200, _range(10, 600_000)
        ),
        max_backoff_ms=_get(
            rec_raw, "reconciler.max_backoff_ms", int, 30_000, _range(10, 3_600_000)
        ),
        in_flight_grace_ms=_get(
            rec_raw, "reconciler.in_flight_grace_ms", int, 15_000, _range(100, 3_600_000)
        ),
    )
    longest = max(c.timeout_ms for c in channels)
    if reconciler.in_flight_grace_ms <= longest:
        raise ConfigError(
            f"reconciler.in_flight_grace_ms: must be longer than the longest channel timeout "
            f"({longest} ms), got {reconciler.in_flight_grace_ms}"
        )
    return Config(
        server=server,
        redis=redis,
        merchants=merchants,
        channels=channels,
        reconciler=reconciler,
        fingerprint_key=_fingerprint_key(_table(raw, "security"), base_dir, env),
        routing=parse_routing(_table(raw, "routing"), [c.name for c in channels]),
        risk=parse_risk(raw.get("risk"), {m.id for m in merchants}, ConfigError),
    )


def _merchant(raw: Any, where: str) -> MerchantConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    _only(raw, where, set(MerchantConfig.__slots__))
    return MerchantConfig(
        id=_req(raw, f"{where}.id", str, _match(MERCHANT_ID, "1-24 characters of [a-z0-9_]")),
        api_key_sha256=_req(
            raw, f"{where}.api_key_sha256", str, _match(SHA256_HEX, "64 lower-case hex digits")
        ),
        rate_per_s=_get(raw, f"{where}.rate_per_s", int, 1000, _range(1, 10**7)),
        burst=_get(raw, f"{where}.burst", int, 1000, _range(1, 10**7)),
        max_amount_minor=_get(
            raw, f"{where}.max_amount_minor", int, 100_000_000_000, _range(1, 10**15)
        ),
    )


def _channel(raw: Any, where: str) -> ChannelConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    _only(raw, where, set(ChannelConfig.__slots__))
    endpoints = raw.get("endpoints")
    if (
        not isinstance(endpoints, list)
        or not endpoints
        or not all(isinstance(e, str) and ADDRESS.match(e) for e in endpoints)
    ):
        raise ConfigError(
            f"{where}.endpoints: must be a non-empty list of 'host:port' or 'unix:PATH' strings, "
            f"got {endpoints!r}"
        )
    rate = _get(raw, f"{where}.rate_per_s", int, 0, _range(0, 10**7))
    burst = _get(raw, f"{where}.burst", int, rate, _range(0, 10**7))
    if rate and not burst:
        raise ConfigError(f"{where}.burst: must be at least 1 when rate_per_s is set")
    return ChannelConfig(
        name=_req(raw, f"{where}.name", str, _match(CHANNEL_NAME, "1-32 characters of [a-z0-9_]")),
        endpoints=tuple(endpoints),
        priority=_get(raw, f"{where}.priority", int, 100, _range(0, 10_000)),
        weight=_get(raw, f"{where}.weight", int, 100, _range(1, 10_000)),
        timeout_ms=_get(raw, f"{where}.timeout_ms", int, 5000, _range(1, 600_000)),
        rate_per_s=rate,
        burst=burst,
    )


def _fingerprint_key(raw: dict[str, Any], base_dir: pathlib.Path, env: Any) -> bytes:
    _only(raw, "security", {"fingerprint_key_file", "fingerprint_key_env"})
    file, var = raw.get("fingerprint_key_file"), raw.get("fingerprint_key_env")
    if (file is None) == (var is None):
        raise ConfigError(
            "security: set exactly one of fingerprint_key_file or fingerprint_key_env "
            "(the secret for card fingerprints, at least 32 hex digits)"
        )
    if file is not None:
        if not isinstance(file, str):
            raise ConfigError("security.fingerprint_key_file: must be a string path")
        path = base_dir / file
        try:
            text = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"security.fingerprint_key_file: cannot read {path}: {exc.strerror}"
            ) from exc
        key_name = "security.fingerprint_key_file"
    else:
        if not isinstance(var, str) or var not in env:
            raise ConfigError(
                f"security.fingerprint_key_env: environment variable {var!r} is not set"
            )
        text = str(env[var]).strip()
        key_name = "security.fingerprint_key_env"
    try:
        key = bytes.fromhex(text)
    except ValueError as exc:
        raise ConfigError(f"{key_name}: the key must be hex digits") from exc
    if len(key) < 16:
        raise ConfigError(f"{key_name}: the key must be at least 16 bytes (32 hex digits)")
    return key


# --- small validators -------------------------------------------------------------------------

Check = Callable[[str, Any], None]


def _table(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: must be a table ([{key}])")
    return value


def _array(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"{key}: must be an array of tables ([[{key}]])")
    return value


def _only(raw: dict[str, Any], where: str, allowed: set[str]) -> None:
    for key in raw:
        if key not in allowed:
            name = f"{where}.{key}" if where else key
            raise ConfigError(f"{name}: unknown key (known: {', '.join(sorted(allowed))})")


def _get(raw: dict[str, Any], name: str, kind: Any, default: T, check: Check | None = None) -> T:
    key = name.rsplit(".", 1)[-1]
    if key not in raw:
        return default
    return _checked(raw[key], name, kind, check)  # type: ignore[no-any-return]


def _req(raw: dict[str, Any], name: str, kind: Any, check: Check | None = None) -> Any:
    key = name.rsplit(".", 1)[-1]
    if key not in raw:
        raise ConfigError(f"{name}: required")
    return _checked(raw[key], name, kind, check)


def _checked(value: Any, name: str, kind: Any, check: Check | None) -> Any:
    if isinstance(value, bool) or not isinstance(value, kind):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        expected = " or ".join(k.__name__ for k in kinds)
        raise ConfigError(f"{name}: must be {expected}, got {value!r}")
    if check is not None:
        check(name, value)
    return value


def _range(lo: float, hi: float) -> Check:
    def check(name: str, value: Any) -> None:
        if not lo <= value <= hi:
            raise ConfigError(f"{name}: must be from {lo} to {hi}, got {value!r}")

    return check


def _match(pattern: re.Pattern[str], what: str) -> Check:
    def check(name: str, value: Any) -> None:
        if not pattern.match(value):
            raise ConfigError(f"{name}: must be {what}, got {value!r}")

    return check


def _one_of(*options: str) -> Check:
    def check(name: str, value: Any) -> None:
        if value not in options:
            raise ConfigError(f"{name}: must be one of {', '.join(options)}, got {value!r}")

    return check


def _address(name: str, value: Any) -> None:
    if not ADDRESS.match(value):
        raise ConfigError(f"{name}: must be 'host:port' or 'unix:PATH', got {value!r}")


def _address_or_empty(name: str, value: Any) -> None:
    if value:
        _address(name, value)


def _redis_url(name: str, value: Any) -> None:
    if not (
        re.match(r"^redis://[^/]*(/\d+)?$", value)
        or re.match(r"^unix://(/[^?]+)(\?db=\d+)?$", value)
    ):
        raise ConfigError(
            f"{name}: must be redis://[user:password@]host:port[/db] or "
            f"unix:///path/to/redis.sock[?db=N] (TLS is not supported yet), got {value!r}"
        )


def _unique(values: list[str], where: str, key: str) -> None:
    seen: set[str] = set()
    for i, v in enumerate(values):
        if v in seen:
            raise ConfigError(f"{where}[{i}].{key}: duplicate value {v!r}")
        seen.add(v)
