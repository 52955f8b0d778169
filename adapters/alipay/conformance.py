"""The Alipay channel's conformance profile: the simulator's test payment codes."""

from __future__ import annotations

from adapters.sdk.conformance.profile import ConformanceProfile
from adapters.sdk.types import DeclineCode, OperationStatus, PaymentMethodType, Wallet


def payment_code(scenario: str) -> Wallet:
    """A simulator payment code: 18 digits from 28, the last four choosing what happens."""
    return Wallet(PaymentMethodType.ALIPAY, "28" + "0" * 12 + scenario)


PROFILE = ConformanceProfile(
    approving=payment_code("0000"),
    declining=payment_code("1051"),
    decline_code=DeclineCode.INSUFFICIENT_FUNDS,
    # The buyer must confirm on the phone (10003, WAIT_BUYER_PAY) and does so a little later:
    # PENDING at first, then the background query settles it and announces it.
    unknown_outcome=payment_code("2001"),
    unknown_outcome_final=OperationStatus.APPROVED,
    announces_events=True,
    # Paid, but the gateway does not answer for a while.
    hanging=payment_code("2005"),
    currency="CNY",
    amount_minor=1000,
    channel_name="alipay",
)
