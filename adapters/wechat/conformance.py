"""The WeChat Pay channel's conformance profile: the simulator's test payment codes."""

from __future__ import annotations

from adapters.sdk.conformance.profile import ConformanceProfile
from adapters.sdk.types import DeclineCode, OperationStatus, PaymentMethodType, Wallet


def payment_code(scenario: str) -> Wallet:
    """A simulator payment code: 18 digits from 13, the last four choosing what happens."""
    return Wallet(PaymentMethodType.WECHAT_PAY, "13" + "0" * 12 + scenario)


PROFILE = ConformanceProfile(
    approving=payment_code("0000"),
    declining=payment_code("1051"),
    decline_code=DeclineCode.INSUFFICIENT_FUNDS,
    # USERPAYING: the buyer enters a password and pays a little later; the platform's
    # notification settles it and the worker announces it on WatchEvents.
    unknown_outcome=payment_code("2001"),
    unknown_outcome_final=OperationStatus.APPROVED,
    announces_events=True,
    # Paid, but the platform does not answer for a while.
    hanging=payment_code("2005"),
    currency="CNY",
    amount_minor=1000,
    channel_name="wechat",
)
