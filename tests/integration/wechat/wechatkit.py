"""Helpers for the WeChat Pay channel's tests: fresh keys, a simulator process, adapters."""

from __future__ import annotations

import pathlib
import secrets
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.sdk.types import AuthorizeRequest, PaymentMethodType, Wallet
from adapters.walletkit import keys
from adapters.walletkit.wallet import Tuning
from adapters.wechat.adapter import WechatSettings
from adapters.wechat.signing import APIV3_KEY_BYTES
from adapters.wechat.simulator import generate_keys
from tests.integration.alipay.alipaykit import MERCHANT, cny, sim_json
from tests.support import free_port, spawn, stop_process, wait_for_port

MCHID = "1900000109"
APPID = "wxd678efh567hg6787"
CONFIRM_AFTER_S = 0.6
HANG_S = 4.0


def code(scenario: str) -> str:
    """A test payment code (18 digits from 13) whose last four choose the scenario."""
    return "13" + secrets.choice("0123456789") * 12 + scenario


@dataclass(frozen=True)
class KeySet:
    """Merchant and platform key pairs and an API v3 key, as `--generate-keys` writes them."""

    dir: pathlib.Path

    @classmethod
    def create(cls, directory: pathlib.Path) -> KeySet:
        generate_keys(directory)
        return cls(directory)

    def path(self, name: str) -> str:
        return str(self.dir / (name if name.endswith(".key") else f"{name}.pem"))


@dataclass
class SimulatorProcess:
    """`python -m adapters.wechat.simulator` on a free port."""

    keys: KeySet
    extra: Sequence[str] = ()
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = spawn(
            [
                "-m", "adapters.wechat.simulator",
                "--listen", f"127.0.0.1:{self.port}",
                "--mchid", MCHID,
                "--appid", APPID,
                "--merchant-public-key", self.keys.path("merchant_public"),
                "--platform-private-key", self.keys.path("platform_private"),
                "--apiv3-key", self.keys.path("apiv3.key"),
                "--confirm-after-s", str(CONFIRM_AFTER_S),
                "--hang-s", str(HANG_S),
                "--notify-retry-s", "0.2,0.4,0.8",
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    async def stats(self) -> dict[str, Any]:
        return await sim_json(self.port, "GET", "/_sim/stats")

    async def redeliver(self, key: str, tamper: str = "") -> dict[str, Any]:
        """Have the platform post the last notification about `key` once more."""
        return await sim_json(
            self.port, "POST", f"/_sim/notifications/{key}/redeliver?tamper={tamper}"
        )


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
