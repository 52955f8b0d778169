"""The card channel's conformance profile, for `--profile adapters.card.conformance:PROFILE`.

Run the worker with a response timeout below the profile's call deadline (the default 5 s is
fine) and the simulator's --slow-seconds above the worker's response timeout, so that the slow
card stands for an upstream that hangs. Run the simulator with `--state FILE` and pass the
same FILE as `--upstream`, so that the suite counts what the host carried out.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from adapters.card import mapping, testcards
from adapters.card.host import HostRecord, load_state
from adapters.sdk.conformance.profile import ConformanceProfile
from adapters.sdk.types import Card, DeclineCode, OperationStatus, OperationType


class HostStateCounter:
    """Counts from the simulated host's state file what it carried out.

    The host keeps a record per request it took on (by terminal, STAN and DE7; a duplicate
    transmission gets 94 and no record), so a repeat the adapter sends again under a new STAN is
    a second record, as a second hold on the card would be at a real acquirer.
    """

    def __init__(self, state_file: str) -> None:
        self.path = Path(state_file)

    async def carried_out(self, operation: OperationType) -> int:
        records = await asyncio.to_thread(load_state, self.path)
        return sum(_count(record, operation) for record in records.values())


def _count(record: HostRecord, operation: OperationType) -> int:
    if operation is OperationType.CAPTURE:
        return len(record.completions)
    if record.mti not in ("0100", "0200"):
        return 0
    if operation is OperationType.AUTHORIZE:
        return int(record.de3 == mapping.PURCHASE)
    return int(operation is OperationType.REFUND and record.de3 == mapping.REFUND)


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
    upstream_counter=HostStateCounter,
)
