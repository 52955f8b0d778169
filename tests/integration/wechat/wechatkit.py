"""Helpers for the WeChat Pay channel's tests: fresh keys, a simulator process, adapters."""

from __future__ import annotations

import pathlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from adapters.sdk.types import AuthorizeRequest, PaymentMethodType, Wallet
from adapters.walletkit import keys
from adapters.walletkit.wallet import Tuning
from adapters.wechat.adapter import WechatSettings
from adapters.wechat.signing import APIV3_KEY_BYTES
from adapters.wechat.simulator import generate_keys
from tests.integration.alipay import alipaykit
from tests.integration.alipay.alipaykit import MERCHANT, cny, sim_json
from tests.support import free_port

MCHID = "1900000109"
APPID = "wxd678efh567hg6787"


def code(scenario: str) -> str:
    """A test payment code (18 digits from 13) whose last four choose the scenario."""
    return "13" + secrets.choice("0123456789") * 12 + scenario


@dataclass(frozen=True)
class KeySet(alipaykit.KeySet):
    """Merchant and platform key pairs and an API v3 key, as `--generate-keys` writes them."""

    GENERATE: ClassVar[Callable[[pathlib.Path], None]] = staticmethod(generate_keys)


@dataclass
class SimulatorProcess(alipaykit.SimulatorProcess):
    """`python -m adapters.wechat.simulator` on a free port."""

    MODULE: ClassVar[str] = "adapters.wechat.simulator"

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def flags(self) -> list[str]:
        return [
            "--mchid", MCHID,
            "--appid", APPID,
            "--merchant-public-key", self.keys.path("merchant_public"),
            "--platform-private-key", self.keys.path("platform_private"),
            "--apiv3-key", self.keys.path("apiv3.key"),
            "--notify-retry-s", "0.2,0.4,0.8",
        ]  # fmt: skip

    async def redeliver(self, key: str, tamper: str = "") -> dict[str, Any]:
        """Have the platform post the last notification about `key` once more."""
        target = f"/_sim/notifications/{key}/redeliver?tamper={tamper}"
        return await sim_json(self.port, "POST", target)


def settings(sim: SimulatorProcess, *, notify: bool = True, **overrides: Any) -> WechatSettings:
    tuning = Tuning(
        timeout_s=overrides.pop("timeout_s", 2.0),
        poll_interval_s=overrides.pop("poll_interval_s", 0.2),
        max_connections=overrides.pop("max_connections", 8),
    )
    merchant = keys.load_private_key(sim.keys.path("merchant_private"))
    platform = keys.load_public_key(sim.keys.path("platform_public"))
    values: dict[str, Any] = {
        "api_base": sim.api_base,
        "mchid": MCHID,
        "appid": APPID,
        "merchant_key": merchant,
        "merchant_serial": keys.key_serial(merchant.public_key()),
        "platform_key": platform,
        "platform_serial": keys.key_serial(platform),
        "apiv3_key": keys.load_secret(sim.keys.path("apiv3.key"), APIV3_KEY_BYTES),
        "notify_listen": ("127.0.0.1", free_port()) if notify else None,
        "tuning": tuning,
    }
    values.update(overrides)
    return WechatSettings(**values)


def authorize(reference: str, auth_code: str, fen: int = 8888, **kw: Any) -> AuthorizeRequest:
    return AuthorizeRequest(
        reference=reference,
        merchant_id=MERCHANT,
        amount=cny(fen),
        payment_method=Wallet(kw.pop("kind", PaymentMethodType.WECHAT_PAY), auth_code),
        capture=kw.pop("capture", True),
        description="payswitch test",
    )
