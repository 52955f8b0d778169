"""What a channel tells the conformance suite: its test instruments, amounts and timings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from adapters.sdk.conformance.upstream import UpstreamCounter
from adapters.sdk.types import (
    AuthorizeRequest,
    Card,
    DeclineCode,
    Money,
    OperationStatus,
    PaymentMethod,
    PaymentMethodType,
    Wallet,
)


@dataclass(frozen=True, slots=True)
class ConformanceProfile:
    """The test instruments a channel offers the suite, in `adapters/<name>/conformance.py`.

    Checks that need an instrument the profile does not name (for example `unknown_outcome`)
    are not applicable to that channel; everything else is checked against the capabilities
    the worker describes.
    """

    # An instrument the upstream approves, in `currency` for `amount_minor`.
    approving: PaymentMethod
    # An instrument the upstream declines.
    declining: PaymentMethod
    # The decline code `declining` must come back with; None accepts any code.
    decline_code: DeclineCode | None = None
    # An instrument whose authorization is answered PENDING (a timeout upstream, a buyer who
    # has not confirmed); None when the channel cannot produce one on demand.
    unknown_outcome: PaymentMethod | None = None
    # What the unknown outcome settles as; None accepts APPROVED or DECLINED.
    unknown_outcome_final: OperationStatus | None = None
    # Whether the settled outcome is also announced on WatchEvents.
    announces_events: bool = False
    # An instrument whose call never answers in time (the upstream hangs); the suite gives up
    # on the call after `hang_deadline_s` and checks that Inquire knows the reference.
    hanging: PaymentMethod | None = None
    hang_deadline_s: float = 0.5
    currency: str = "USD"
    amount_minor: int = 1000
    # The name the channel must describe itself with; None accepts any valid name.
    channel_name: str | None = None
    merchant_id: str = "conformance"
    # Deadline of each call; an unknown outcome's call must be answered within it too.
    call_timeout_s: float = 10.0
    # How long Inquire (or WatchEvents) may take to tell an unknown outcome.
    resolve_timeout_s: float = 15.0
    # How to count what the channel's upstream carried out, given where to look
    # (`upstream_at`: its simulator's address or state file, as the channel's conformance.py
    # says; `payswitch conformance --upstream WHERE`). With both set, the suite checks that a
    # repeated authorization, capture or refund is carried out once upstream.
    upstream_counter: Callable[[str], UpstreamCounter] | None = None
    upstream_at: str = ""

    def upstream(self) -> UpstreamCounter | None:
        """The counter of this run's upstream, or None when the profile cannot count."""
        if self.upstream_counter is None or not self.upstream_at:
            return None
        return self.upstream_counter(self.upstream_at)

    def authorize(
        self,
        reference: str,
        method: PaymentMethod | None = None,
        *,
        capture: bool = True,
        amount_minor: int | None = None,
        currency: str | None = None,
    ) -> AuthorizeRequest:
        """An authorization of the profile's amount with `method` (default: `approving`)."""
        amount = Money(amount_minor or self.amount_minor, currency or self.currency)
        return AuthorizeRequest(
            reference=reference,
            merchant_id=self.merchant_id,
            amount=amount,
            payment_method=method or self.approving,
            capture=capture,
            description="payswitch conformance",
        )

    def money(self, amount_minor: int) -> Money:
        return Money(amount_minor, self.currency)


def instrument(kind: PaymentMethodType) -> PaymentMethod:
    """A well-formed instrument of `kind`, for calls a channel must refuse before using it."""
    if kind is PaymentMethodType.CARD:
        return Card(number="4242424242424242", expiry_month=12, expiry_year=2035, cvc="123")
    code = "286600000000000000" if kind is PaymentMethodType.ALIPAY else "134600000000000000"
    return Wallet(type=kind, auth_code=code)
