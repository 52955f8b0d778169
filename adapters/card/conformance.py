"""The card channel's conformance profile, for `--profile adapters.card.conformance:PROFILE`.

Run the worker with a response timeout below the profile's call deadline (the default 5 s is
fine) and the simulator's --slow-seconds above the worker's response timeout, so that the slow
card stands for an upstream that hangs.
"""

from __future__ import annotations

from adapters.card import testcards
from adapters.sdk.conformance.profile import ConformanceProfile
from adapters.sdk.types import Card, DeclineCode, OperationStatus


def _card(number: str) -> Card:
    return Card(number=number, expiry_month=12, expiry_year=2035, cvc="123")


PROFILE = ConformanceProfile(
    approving=_card(testcards.APPROVE),
    declining=_card(testcards.DECLINES["51"]),
    decline_code=DeclineCode.INSUFFICIENT_FUNDS,
    # The host approves and never answers: PENDING, then the reversal is acknowledged and the
    # authorization settles as DECLINED (raw code 68), announced on WatchEvents.
    unknown_outcome=_card(testcards.NO_ANSWER),
    unknown_outcome_final=OperationStatus.DECLINED,
    announces_events=True,
    hanging=_card(testcards.SLOW),
    channel_name="card",
    currency="USD",
    amount_minor=1000,
)
