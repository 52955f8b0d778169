"""The WeChat Pay channel's conformance profile: the simulator's test payment codes (13...)."""

from __future__ import annotations

from adapters.sdk.types import PaymentMethodType
from adapters.walletkit.conformance import wallet_profile

# USERPAYING settles through the platform's notification; 1051 is 403 NOTENOUGH.
# Run it with `--upstream http://HOST:PORT` of the simulator.
PROFILE = wallet_profile(PaymentMethodType.WECHAT_PAY, "13", "wechat", payments_stat="orders")
