"""The conformance profile both wallet simulators support: the same scenario codes for each,
and what they carried out, read from their `/_sim/stats`."""

from __future__ import annotations

import json
from collections.abc import Callable

from adapters.sdk.conformance.profile import ConformanceProfile
from adapters.sdk.conformance.upstream import UpstreamCounter
from adapters.sdk.types import (
    DeclineCode,
    OperationStatus,
    OperationType,
    PaymentMethodType,
    Wallet,
)
from adapters.walletkit.httpclient import HttpClient


class SimulatorStatsCounter:
    """Counts what a wallet simulator carried out from its `/_sim/stats` at `origin`.

    `payments` names the stat that counts payments taken on (trades, orders): one per
    out_trade_no, so a repeat sent again under the same number is not a second one, and one
    sent under a new number is. Refunds are counted by out_request_no / out_refund_no alike.
    The platforms take no separate capture, so captures are zero.
    """

    def __init__(self, origin: str, *, payments: str) -> None:
        self.origin = origin
        self._stats = {OperationType.AUTHORIZE: payments, OperationType.REFUND: "refunds"}

    async def carried_out(self, operation: OperationType) -> int:
        name = self._stats.get(operation)
        if name is None:
            return 0
        http = HttpClient(self.origin)
        try:
            response = await http.request("GET", "/_sim/stats")
        finally:
            await http.aclose()
        return int(json.loads(response.body)[name])


def stats_counter(payments: str) -> Callable[[str], UpstreamCounter]:
    """The profile's `upstream_counter`: `upstream_at` is the simulator's http://HOST:PORT."""

    def counter(origin: str) -> UpstreamCounter:
        return SimulatorStatsCounter(origin, payments=payments)

    return counter


def wallet_profile(
    kind: PaymentMethodType, prefix: str, name: str, *, payments_stat: str
) -> ConformanceProfile:
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
        upstream_counter=stats_counter(payments_stat),
    )
