"""The template's conformance profile: its test cards, for `payswitch conformance`."""

from __future__ import annotations

from adapters.sdk.conformance.profile import ConformanceProfile
from adapters.sdk.conformance.upstream import JournalCounter
from adapters.sdk.types import Card, DeclineCode, OperationStatus


def _card(number: str) -> Card:
    return Card(number=number, expiry_month=12, expiry_year=2035, cvc="123")


PROFILE = ConformanceProfile(
    approving=_card("4242424242424242"),
    declining=_card("4000000000009995"),
    decline_code=DeclineCode.INSUFFICIENT_FUNDS,
    # Approved upstream but the answer is lost: the adapter times out, the worker answers
    # PENDING, and Inquire (a query upstream) then finds the approval.
    unknown_outcome=_card("4000000000000341"),
    unknown_outcome_final=OperationStatus.APPROVED,
    channel_name="template",
    currency="USD",
    # What the pretend upstream charged: the worker's --upstream-journal FILE is `upstream_at`.
    upstream_counter=JournalCounter,
)
