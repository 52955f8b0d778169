"""The template channel's worker: `python -m adapters.template.worker --listen ADDR`.

Register your own channel in pyproject.toml under [project.entry-points."payswitch.adapters"]
as `yourname = "adapters.yourname.worker:main"`; then `payswitch adapter yourname` runs it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from adapters.sdk import worker_main
from adapters.template.adapter import TemplateAdapter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default="template", help="the channel's name")
    parser.add_argument("--timeout-ms", type=float, default=2000, help="upstream call timeout")
    parser.add_argument(
        "--upstream-journal",
        default="",
        metavar="FILE",
        help="append a JSON line per payment or refund the pretend upstream charges",
    )


def build(args: argparse.Namespace) -> TemplateAdapter:
    if args.timeout_ms <= 0:
        raise ValueError("--timeout-ms: must be positive")
    return TemplateAdapter(
        name=args.name, timeout_s=args.timeout_ms / 1000, upstream_journal=args.upstream_journal
    )


def main(argv: Sequence[str]) -> int:
    return worker_main(argv, build, prog="template worker", add_arguments=add_arguments)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
