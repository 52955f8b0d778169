"""`payswitch adapter wechat`: the WeChat-Pay-style channel's worker, its flags and defaults."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from adapters.sdk.worker import worker_main
from adapters.walletkit import keys
from adapters.walletkit.httpserver import parse_listen
from adapters.walletkit.wallet import Tuning
from adapters.wechat.adapter import WechatPayAdapter, WechatSettings
from adapters.wechat.signing import APIV3_KEY_BYTES

KEY_HELP = "a file, or env:NAME for an environment variable holding it"


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--api-base", required=True, help="the API origin, e.g. https://api.mch.weixin.qq.com")
    add("--mchid", required=True, help="the merchant id")
    add("--appid", required=True, help="the app id bound to the merchant")
    add("--merchant-private-key", required=True, help=f"the merchant's RSA key: {KEY_HELP}")
    add("--merchant-serial", default="", help="its certificate serial (default: from the key)")
    add("--platform-public-key", required=True, help=f"the platform's RSA key: {KEY_HELP}")
    add("--platform-serial", default="", help="its serial or key id (default: from the key)")
    add("--apiv3-key", required=True, help=f"the 32-byte API v3 key: {KEY_HELP}")
    add("--notify-listen", default="", metavar="HOST:PORT", help="serve notifications here")
    add("--notify-url", default="", help="the URL the platform posts to (default: the listener)")
    Tuning.add_arguments(parser)


def build(args: argparse.Namespace) -> WechatPayAdapter:
    """The adapter for the parsed flags; ValueError names a bad flag (never a key's content)."""
    merchant_key = keys.load_private_key(args.merchant_private_key)
    platform_key = keys.load_public_key(args.platform_public_key)
    settings = WechatSettings(
        api_base=args.api_base,
        mchid=args.mchid,
        appid=args.appid,
        merchant_key=merchant_key,
        merchant_serial=args.merchant_serial or keys.key_serial(merchant_key.public_key()),
        platform_key=platform_key,
        platform_serial=args.platform_serial or keys.key_serial(platform_key),
        apiv3_key=keys.load_secret(args.apiv3_key, APIV3_KEY_BYTES),
        notify_listen=parse_listen(args.notify_listen) if args.notify_listen else None,
        notify_url=args.notify_url,
        tuning=Tuning.from_args(args),
    )
    return WechatPayAdapter(settings)


def main(argv: Sequence[str]) -> int:
    return worker_main(
        argv,
        build,
        prog="payswitch adapter wechat",
        description="The WeChat-Pay-style channel: codepay over API v3, with notifications.",
        add_arguments=_add_arguments,
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
