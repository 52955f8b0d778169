"""`payswitch routes explain`: which channels a sample payment would go to, in which order, and why.

It reads the switch's config, asks every channel endpoint what it supports and whether it is
healthy (as a switch does at start), reads the approval rates all switches share in Redis and
the breaker states they publish there, and runs the switch's own router on the sample. Nothing
is sent to any channel and no card number is needed: the BIN is enough.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections import Counter
from collections.abc import Sequence

import redis.asyncio as aioredis
import redis.exceptions

from switch import config as config_mod
from switch.model import MethodType
from switch.pool import Pool
from switch.routestate import RouteState, read_breakers
from switch.routing import Explained, Router, RouteRequest

METHODS = {
    "card": MethodType.CARD,
    "alipay": MethodType.ALIPAY,
    "wechat_pay": MethodType.WECHAT_PAY,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="payswitch routes explain",
        description="Show which channels a sample payment matches, in which order, and why.",
    )
    p.add_argument("--config", required=True, help="the switch's TOML config file")
    p.add_argument("--method", default="card", choices=sorted(METHODS), help="payment method")
    p.add_argument("--currency", required=True, help="ISO 4217 code, e.g. USD")
    p.add_argument("--amount", required=True, type=int, help="amount in minor units, e.g. 1000")
    p.add_argument("--bin", default="", help="the card's first 6 (up to 8) digits")
    p.add_argument("--manual-capture", action="store_true", help="authorize now, capture later")
    return p


def _request(ns: argparse.Namespace) -> RouteRequest:
    if not re.fullmatch(r"[A-Z]{3}", ns.currency):
        raise ValueError(f"--currency: must be an ISO 4217 code like USD, got {ns.currency!r}")
    if ns.amount < 1:
        raise ValueError(f"--amount: must be a positive number of minor units, got {ns.amount}")
    if ns.bin and not re.fullmatch(r"\d{1,8}", ns.bin):
        raise ValueError(f"--bin: must be up to 8 digits, got {ns.bin!r}")
    if ns.bin and ns.method != "card":
        raise ValueError("--bin: only card payments have a BIN")
    return RouteRequest(
        method=METHODS[ns.method],
        currency=ns.currency,
        amount=ns.amount,
        manual_capture=ns.manual_capture,
        card_bin=ns.bin,
    )


async def explain(cfg: config_mod.Config, req: RouteRequest) -> list[str]:
    """The lines of the explanation."""
    routing = cfg.routing
    pool = Pool(cfg.channels, breaker=routing.breaker, use_exchange=False)
    client = aioredis.Redis.from_url(cfg.redis.url, socket_timeout=2.0, socket_connect_timeout=2.0)
    state = RouteState(
        client=client,
        channels=pool.channels,
        window_s=routing.success_window_s,
        min_samples=routing.success_min_samples,
        interval_ms=routing.sync_interval_ms,
    )
    notes: list[str] = []
    breakers: dict[str, list[str]] = {}
    try:
        await pool.start()
        try:
            await state.sync()
            breakers = await read_breakers(client, max(5_000, 3 * routing.sync_interval_ms))
        except (redis.exceptions.RedisError, OSError) as exc:
            notes.append(f"Redis unreachable ({exc}): success rates and breaker states unknown")
        rows = Router(pool.channels.values(), routing=routing, rates=state).explain(req)
    finally:
        await pool.close()
        await client.aclose()
    rule = next(
        (r for r in routing.rules if r.matches(req.card_bin, req.currency, req.amount)), None
    )
    lines = [
        f"payment: {req.method.name} {req.amount} {req.currency}"
        + (f", BIN {req.card_bin}" if req.card_bin else "")
        + (", manual capture" if req.manual_capture else ""),
        f"strategy: {routing.strategy} within each priority (exploration {routing.exploration:.0%}"
        f" of payments ignore success rates)",
        "rule: "
        + (f"{rule.name} ({rule.mode} {', '.join(rule.channels)})" if rule else "none matches"),
        *notes,
        "",
    ]
    for row in rows:
        lines += _row(row, cfg, breakers)
    if not any(r.position for r in rows):
        lines.append("no channel would take this payment")
    return lines


def _row(row: Explained, cfg: config_mod.Config, breakers: dict[str, list[str]]) -> list[str]:
    place = f"{row.position}." if row.position else "-"
    out = [f"{place:>3} {row.channel}"]
    out += [f"      {why}" for why in row.reasons]
    channel = next(c for c in cfg.channels if c.name == row.channel)
    for address in channel.endpoints:
        states = Counter(breakers.get(f"{row.channel}|{address}", []))
        if states:
            told = ", ".join(f"{s.lower()} on {n}" for s, n in sorted(states.items()))
            out.append(f"      breaker of {address}: {told} running switch(es)")
    return out


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    if not args or args[0] != "explain":
        print(
            "usage: payswitch routes explain --config FILE --currency USD --amount 1000 "
            "[--method card] [--bin 424242] [--manual-capture]",
            file=sys.stderr,
        )
        return 2
    ns = parser().parse_args(args[1:])
    try:
        cfg = config_mod.load(ns.config)
        req = _request(ns)
    except (config_mod.ConfigError, ValueError) as exc:
        print(f"payswitch routes explain: {exc}", file=sys.stderr)
        return 2
    for line in asyncio.run(explain(cfg, req)):
        print(line)
    return 0
