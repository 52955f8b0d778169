"""`payswitch adapter sandbox`: the sandbox channel's worker and its flags."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

from adapters.sandbox.adapter import SandboxAdapter, SandboxConfig
from adapters.sdk.types import DeclineCode, PaymentMethodType
from adapters.sdk.worker import worker_main

_METHODS = {
    "card": PaymentMethodType.CARD,
    "alipay": PaymentMethodType.ALIPAY,
    "wechat_pay": PaymentMethodType.WECHAT_PAY,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--name", default="sandbox", help="the channel's name, [a-z0-9_]{1,32}")
    add("--currencies", default="USD,EUR,GBP,CNY,JPY", help="comma-separated ISO 4217 codes")
    add(
        "--methods", default="card,alipay,wechat_pay", help="comma-separated: " + ",".join(_METHODS)
    )
    add("--min-amount", type=int, default=1, help="smallest amount in minor units")
    add("--max-amount", type=int, default=0, help="largest amount in minor units; 0: no limit")
    add("--latency-ms", type=float, default=0.0, help="added to every answer")
    add("--slow-ms", type=float, default=1500.0, help="how long the slow test card takes")
    add("--hang-ms", type=float, default=30000.0, help="how long a timeout test card hangs")
    add("--pending-resolve-ms", type=float, default=300.0, help="when a PENDING answer settles")
    add("--journal", default="", metavar="FILE", help="append a JSON line per operation received")
    add("--max-records", type=int, default=500_000, help="operations kept in memory")
    add(
        "--decline-all",
        default="",
        metavar="CODE",
        help="decline every authorization with this decline code, e.g. do_not_honor",
    )
    add(
        "--unavailable",
        action="store_true",
        help="refuse every operation as if the upstream were unreachable (nothing is sent)",
    )
    for what in ("manual-capture", "partial-capture", "void", "refund", "partial-refund"):
        add(f"--no-{what}", action="store_true", help=f"do not support {what.replace('-', ' ')}")


def build_config(args: argparse.Namespace) -> SandboxConfig:
    """The sandbox's config from its flags; a ValueError names the bad flag."""
    if re.fullmatch(r"[a-z0-9_]{1,32}", args.name) is None:
        raise ValueError(f"--name: must match [a-z0-9_]{{1,32}}, got {args.name!r}")
    currencies = frozenset(c.strip() for c in args.currencies.split(",") if c.strip())
    if not currencies or any(re.fullmatch(r"[A-Z]{3}", c) is None for c in currencies):
        raise ValueError(f"--currencies: need ISO 4217 codes like USD,EUR, got {args.currencies!r}")
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not names or any(m not in _METHODS for m in names):
        raise ValueError(f"--methods: choose from {','.join(_METHODS)}, got {args.methods!r}")
    if args.min_amount < 1 or args.max_amount < 0:
        raise ValueError("--min-amount must be at least 1 and --max-amount at least 0")
    if args.max_amount and args.max_amount < args.min_amount:
        raise ValueError("--max-amount: must be 0 (no limit) or at least --min-amount")
    for flag in ("latency_ms", "slow_ms", "hang_ms", "pending_resolve_ms"):
        if getattr(args, flag) < 0:
            raise ValueError(f"--{flag.replace('_', '-')}: must not be negative")
    if args.max_records < 1:
        raise ValueError("--max-records: must be at least 1")
    decline_all = None
    if args.decline_all:
        codes = [c.name.lower() for c in DeclineCode if c.value]
        if args.decline_all.lower() not in codes:
            raise ValueError(f"--decline-all: choose from {','.join(codes)}")
        decline_all = DeclineCode[args.decline_all.upper()]
    return SandboxConfig(
        name=args.name,
        currencies=currencies,
        methods=frozenset(_METHODS[m] for m in names),
        min_amount_minor=args.min_amount,
        max_amount_minor=args.max_amount,
        latency_s=args.latency_ms / 1000,
        slow_s=args.slow_ms / 1000,
        hang_s=args.hang_ms / 1000,
        pending_resolve_s=args.pending_resolve_ms / 1000,
        manual_capture=not args.no_manual_capture,
        partial_capture=not args.no_partial_capture,
        void=not args.no_void,
        refund=not args.no_refund,
        partial_refund=not args.no_partial_refund,
        journal=args.journal,
        max_records=args.max_records,
        decline_all=decline_all,
        unavailable=args.unavailable,
    )


def main(argv: Sequence[str]) -> int:
    """Run the sandbox worker: `payswitch adapter sandbox --listen ADDR [flags]`."""
    return worker_main(
        argv,
        lambda args: SandboxAdapter(build_config(args)),
        prog="payswitch adapter sandbox",
        description="The sandbox channel: test cards and wallet codes choose each outcome.",
        add_arguments=add_arguments,
    )
