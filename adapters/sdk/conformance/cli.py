"""`payswitch conformance`: run the conformance checks against a worker and print a line each."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import sys
import time
from collections.abc import Sequence
from typing import TextIO

import grpc

from adapters.sdk.conformance import CHECKS, Check, Refused, applicable
from adapters.sdk.conformance.profile import ConformanceProfile


def load_profile(spec: str) -> ConformanceProfile:
    """The ConformanceProfile named by `MODULE:ATTR`; ValueError says what is wrong."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"--profile: want MODULE:ATTR, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"--profile: cannot import {module_name}: {exc}") from exc
    profile = getattr(module, attr, None)
    if not isinstance(profile, ConformanceProfile):
        raise ValueError(f"--profile: {spec} is not a ConformanceProfile")
    return profile


async def run_checks(
    target: str, profile: ConformanceProfile, checks: Sequence[Check], out: TextIO
) -> int:
    """Run `checks` one after another; print PASS/FAIL per check; the number that failed."""
    failed = 0
    for check in checks:
        started = time.monotonic()
        try:
            await asyncio.wait_for(check(target, profile), 4 * profile.resolve_timeout_s + 30)
        except (AssertionError, Refused, grpc.RpcError, TimeoutError, OSError, ValueError) as exc:
            failed += 1
            detail = str(exc) or type(exc).__name__
            print(f"FAIL  {check.name:<34} {detail}", file=out, flush=True)
        else:
            elapsed = time.monotonic() - started
            print(f"PASS  {check.name:<34} {elapsed:6.2f} s", file=out, flush=True)
    skipped = [c.name for c in CHECKS if c not in checks]
    if skipped:
        print(
            f"not run (no instrument in the profile or not chosen): {', '.join(skipped)}", file=out
        )
    print(f"{len(checks) - failed} passed, {failed} failed", file=out)
    return failed


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="payswitch conformance",
        description="Check that an adapter worker keeps the Channel contract.",
    )
    parser.add_argument("--target", help="the worker's address, HOST:PORT (required)")
    parser.add_argument(
        "--profile", help="MODULE:ATTR of the channel's ConformanceProfile (required)"
    )
    parser.add_argument(
        "--upstream",
        metavar="WHERE",
        help="where the profile's upstream counter looks (the simulator's address or state "
        "file, as the channel's conformance.py says); runs replays_charged_once_upstream",
    )
    parser.add_argument(
        "--check", action="append", default=[], metavar="NAME", help="run only these checks"
    )
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    if args.list:
        for check in CHECKS:
            print(f"{check.name:<34} {check.doc}")
        return 0
    if not args.target or not args.profile:
        parser.print_usage(sys.stderr)
        print("payswitch conformance: --target and --profile are required", file=sys.stderr)
        return 2
    try:
        profile = load_profile(args.profile)
    except ValueError as exc:
        print(f"payswitch conformance: {exc}", file=sys.stderr)
        return 2
    if args.upstream:
        if profile.upstream_counter is None:
            print(
                f"payswitch conformance: --upstream: {args.profile} has no upstream_counter",
                file=sys.stderr,
            )
            return 2
        profile = dataclasses.replace(profile, upstream_at=args.upstream)
    checks = applicable(profile)
    unknown = set(args.check) - {c.name for c in CHECKS}
    if unknown:
        print(
            f"payswitch conformance: no check named {', '.join(sorted(unknown))}", file=sys.stderr
        )
        return 2
    if args.check:
        checks = [c for c in checks if c.name in args.check]
    failed = asyncio.run(run_checks(args.target, profile, checks, sys.stdout))
    return 1 if failed else 0
