"""The `payswitch` command: serve the switch, run an adapter, the local stack, bench, tools."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

ADAPTER_GROUP = "payswitch.adapters"


def _run_adapter(name: str, argv: list[str]) -> int:
    # Adapters are found by entry point, so the switch never imports a concrete adapter and an
    # outside author's channel runs the same way as the built-in ones.
    found = {ep.name: ep for ep in entry_points(group=ADAPTER_GROUP)}
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        print(
            f"payswitch adapter: no channel named {name!r} (registered: {known})", file=sys.stderr
        )
        return 2
    worker_main: Callable[[list[str]], int] = found[name].load()
    return worker_main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="payswitch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the switch")
    serve.add_argument("--config", required=True, help="the switch's TOML config file")
    adapter = sub.add_parser(
        "adapter", help="run one adapter worker: payswitch adapter NAME --listen ADDR [options]"
    )
    adapter.add_argument("name", help="the channel's registered name, e.g. sandbox or card")
    up = sub.add_parser("up", help="run the local stack: redis, adapter workers and the switch")
    up.add_argument("--listen", default="127.0.0.1:50051", help="the switch's address")
    up.add_argument("--api-key", default=None, help="the development caller's API key")
    up.add_argument("--redis-url", default=None, help="use this Redis instead of a private one")
    up.add_argument(
        "--traffic",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="drive load through the stack for this long, print the figures, then stop",
    )
    sub.add_parser("bench", help="the load harness: payswitch bench --help", add_help=False)
    sub.add_parser("conformance", help="run the adapter conformance suite", add_help=False)
    sub.add_parser("analytics", help="the journal consumer and AdminService", add_help=False)
    sub.add_parser("stats", help="payment analytics as tables", add_help=False)
    sub.add_parser(
        "routes", help="routing: payswitch routes explain --config FILE ...", add_help=False
    )

    if args and args[0] == "adapter" and len(args) >= 2 and not args[1].startswith("-"):
        return _run_adapter(args[1], args[2:])
    if args and args[0] == "bench":
        from bench.cli import main as bench_main

        return int(bench_main(args[1:]))
    if args and args[0] == "analytics":
        from switch.analytics import main as analytics_main

        return int(analytics_main(args[1:]))
    if args and args[0] == "stats":
        from switch.stats import main as stats_main

        return int(stats_main(args[1:]))
    if args and args[0] == "routes":
        from switch.explain import main as routes_main

        return int(routes_main(args[1:]))
    if args and args[0] == "conformance":
        from adapters.sdk.conformance.cli import main as conformance_main

        return int(conformance_main(args[1:]))

    ns = parser.parse_args(args)
    if ns.command == "serve":
        from switch.app import serve_main

        return serve_main(ns.config)
    if ns.command == "up":
        from switch.stack import up_main

        return up_main(
            listen=ns.listen, api_key=ns.api_key, redis_url=ns.redis_url, traffic_s=ns.traffic
        )
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
