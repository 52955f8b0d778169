"""`payswitch adapter card`: the card channel's worker, its flags and their defaults."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from adapters.card.adapter import CardAdapter
from adapters.card.config import CardConfig
from adapters.sdk.worker import worker_main


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    d = CardConfig.__dataclass_fields__
    add = parser.add_argument
    add("--acquirer", required=True, metavar="HOST:PORT", help="the acquirer host (ISO 8583/TCP)")
    add("--terminal-id", required=True, help="DE41, 1 to 8 characters, one per worker")
    add("--merchant-id", required=True, help="DE42 card acceptor id, 1 to 15 characters")
    add("--saf-file", required=True, type=Path, help="journal of references and the SAF queue")
    add("--acquirer-id", default=d["acquirer_id"].default, help="acquirer id for DE90, digits")
    add("--connections", type=int, default=d["connections"].default, help="TCP connections")
    for name, unit_help in (
        ("connect_timeout", "seconds to open and sign on a connection"),
        ("response_timeout", "seconds to wait for an answer before the outcome is unknown"),
        ("echo_interval", "seconds of idleness before an 0800 echo"),
        ("frame_timeout", "seconds allowed for the rest of a frame once its header came"),
        ("reconnect_base", "first reconnect backoff, seconds (doubles, full jitter)"),
        ("reconnect_cap", "largest reconnect backoff, seconds"),
        ("saf_retry_base", "first store-and-forward retry delay, seconds"),
        ("saf_retry_cap", "largest store-and-forward retry delay, seconds"),
    ):
        add("--" + name.replace("_", "-"), type=float, default=d[name].default, help=unit_help)
    add("--saf-max-attempts", type=int, default=d["saf_max_attempts"].default,
        help="sendings of a reversal or advice before it becomes an exception record")  # fmt: skip
    add("--saf-concurrency", type=int, default=d["saf_concurrency"].default,
        help="SAF entries sent at once")  # fmt: skip
    add("--no-fsync", action="store_true", help="do not fsync the journal (benches only)")


def build(args: argparse.Namespace) -> CardAdapter:
    """The adapter for the parsed flags; ValueError names a bad one."""
    host, _, port = str(args.acquirer).rpartition(":")
    if not host or not port.isdigit():
        raise ValueError("--acquirer: expected HOST:PORT")
    config = CardConfig(
        acquirer_host=host,
        acquirer_port=int(port),
        terminal_id=args.terminal_id,
        merchant_id=args.merchant_id,
        saf_file=args.saf_file,
        acquirer_id=args.acquirer_id,
        connections=args.connections,
        connect_timeout=args.connect_timeout,
        response_timeout=args.response_timeout,
        echo_interval=args.echo_interval,
        frame_timeout=args.frame_timeout,
        reconnect_base=args.reconnect_base,
        reconnect_cap=args.reconnect_cap,
        saf_retry_base=args.saf_retry_base,
        saf_retry_cap=args.saf_retry_cap,
        saf_max_attempts=args.saf_max_attempts,
        saf_concurrency=args.saf_concurrency,
        fsync=not args.no_fsync,
    )
    return CardAdapter(config)


def main(argv: Sequence[str]) -> int:
    return worker_main(
        argv,
        build,
        prog="payswitch adapter card",
        description="The card channel: ISO 8583 (1987) to an acquirer host.",
        add_arguments=_add_arguments,
    )


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
