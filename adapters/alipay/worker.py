"""`payswitch adapter alipay`: the Alipay-style channel's worker, its flags and their defaults."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from adapters.alipay.adapter import AlipayAdapter, AlipaySettings
from adapters.sdk.worker import worker_main
from adapters.walletkit import keys
from adapters.walletkit.wallet import Tuning

KEY_HELP = "a PEM file, or env:NAME for an environment variable holding it"


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--gateway",
        required=True,
        help="the gateway URL, e.g. https://openapi.alipay.com/gateway.do",
    )
    add("--app-id", required=True, help="the app id the platform assigned")
    add("--app-private-key", required=True, help=f"the app's RSA private key: {KEY_HELP}")
    add("--platform-public-key", required=True, help=f"the platform's RSA public key: {KEY_HELP}")
    Tuning.add_arguments(parser)


def build(args: argparse.Namespace) -> AlipayAdapter:
    """The adapter for the parsed flags; ValueError names a bad flag (never a key's content)."""
    settings = AlipaySettings(
        gateway_url=args.gateway,
        app_id=args.app_id,
        app_private_key=keys.load_private_key(args.app_private_key),
        platform_public_key=keys.load_public_key(args.platform_public_key),
        tuning=Tuning.from_args(args),
    )
    return AlipayAdapter(settings)


def main(argv: Sequence[str]) -> int:
    return worker_main(
        argv,
        build,
        prog="payswitch adapter alipay",
        description="The Alipay-style channel: barcode pay over the RSA2-signed open API.",
        add_arguments=_add_arguments,
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
