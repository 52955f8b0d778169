"""The Alipay channel's conformance profile: the simulator's test payment codes (28...)."""

from __future__ import annotations

from adapters.sdk.types import PaymentMethodType
from adapters.walletkit.conformance import wallet_profile

# 10003 / WAIT_BUYER_PAY settles through the background query; 1051 is ACQ.BUYER_BALANCE_NOT_ENOUGH.
# Run it with `--upstream http://HOST:PORT` of the simulator.
PROFILE = wallet_profile(PaymentMethodType.ALIPAY, "28", "alipay", payments_stat="trades")
