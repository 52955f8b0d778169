"""The sandbox's conformance profile, for `--profile adapters.sandbox.conformance:PROFILE`."""

from __future__ import annotations

from adapters.sandbox import testdata
from adapters.sdk.conformance.profile import ConformanceProfile
from adapters.sdk.conformance.upstream import JournalCounter
from adapters.sdk.types import Card, DeclineCode, OperationStatus


def _card(number: str) -> Card:
    return Card(number=number, expiry_month=12, expiry_year=2035, cvc="123")


PROFILE = ConformanceProfile(
    approving=_card(testdata.CARD_APPROVE_VISA),
    declining=_card(testdata.CARD_INSUFFICIENT_FUNDS),
    decline_code=DeclineCode.INSUFFICIENT_FUNDS,
    unknown_outcome=_card(testdata.CARD_PENDING),
    unknown_outcome_final=OperationStatus.APPROVED,
    announces_events=True,
    hanging=_card(testdata.CARD_TIMEOUT),
    currency="USD",
    amount_minor=1000,
    # The sandbox is its own upstream: the worker's --journal FILE is `upstream_at`.
    upstream_counter=JournalCounter,
)
