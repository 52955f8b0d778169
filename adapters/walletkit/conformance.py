"""The conformance profile both wallet simulators support: the same scenario codes for each."""

from __future__ import annotations

from adapters.sdk.conformance.profile import ConformanceProfile
from adapters.sdk.types import DeclineCode, OperationStatus, PaymentMethodType, Wallet


def wallet_profile(kind: PaymentMethodType, prefix: str, name: str) -> ConformanceProfile:
    """Test payment codes are 18 digits: `prefix`, twelve zeros, and four choosing the scenario."""

    def payment_code(scenario: str) -> Wallet:
        return Wallet(kind, prefix + "0" * 12 + scenario)

    return ConformanceProfile(
        approving=payment_code("0000"),
        declining=payment_code("1051"),
        decline_code=DeclineCode.INSUFFICIENT_FUNDS,
        # The buyer must confirm on the phone and does so a little later: PENDING at first,
        # then settled (by a notification or the background query) and announced.
        unknown_outcome=payment_code("2001"),
        unknown_outcome_final=OperationStatus.APPROVED,
        announces_events=True,
        # Paid, but the upstream does not answer for a while.
        hanging=payment_code("2005"),
        currency="CNY",
        amount_minor=1000,
        channel_name=name,
    )
