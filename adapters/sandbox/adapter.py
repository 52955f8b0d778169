"""The sandbox adapter: an in-memory pretend upstream whose outcomes are chosen by test data.

Every operation is recorded by its reference; a repeated reference answers with that
operation's result (its current one, once a pending outcome has settled) and changes nothing.
Follow-ups are checked against the recorded authorization. All state is in memory and bounded
by `max_records` (the oldest operations are forgotten first). With no latency configured an
operation costs microseconds: the sandbox is the channel behind the switch's benchmarks.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from dataclasses import dataclass
from typing import TextIO

from adapters.sandbox.records import Operation, Payment, Records, State
from adapters.sandbox.testdata import Behaviour, Scenario, card_behaviour, wallet_behaviour
from adapters.sdk.adapter import EventSink
from adapters.sdk.errors import (
    NotSupportedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from adapters.sdk.types import (
    AuthorizeRequest,
    Capabilities,
    CaptureRequest,
    Card,
    ChannelEvent,
    DeclineCode,
    InquireRequest,
    Money,
    OperationResult,
    OperationStatus,
    OperationType,
    PaymentMethodType,
    RefundRequest,
    VoidRequest,
)

log = logging.getLogger("payswitch.sandbox")

_APPROVED = OperationStatus.APPROVED
_DECLINED = OperationStatus.DECLINED
_PENDING = OperationStatus.PENDING
NOT_FOUND = OperationResult(status=OperationStatus.NOT_FOUND, message="no such reference")


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """The sandbox's settings; the worker builds it from flags."""

    name: str = "sandbox"
    currencies: frozenset[str] = frozenset({"USD", "EUR", "GBP", "CNY", "JPY"})
    methods: frozenset[PaymentMethodType] = frozenset(PaymentMethodType)
    min_amount_minor: int = 1
    max_amount_minor: int = 0
    latency_s: float = 0.0
    slow_s: float = 1.5
    hang_s: float = 30.0
    pending_resolve_s: float = 0.3
    manual_capture: bool = True
    partial_capture: bool = True
    void: bool = True
    refund: bool = True
    partial_refund: bool = True
    journal: str = ""
    max_records: int = 500_000
    # Fault modes for routing tests: every authorization declines with this code, or every
    # operation is refused as if the upstream were unreachable (nothing is sent).
    decline_all: DeclineCode | None = None
    unavailable: bool = False


class SandboxAdapter:
    """A ChannelAdapter whose upstream lives in memory; see `adapters.sandbox.testdata`."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._ops = Records(config.max_records)
        self._ids = itertools.count(1)
        self._events: EventSink | None = None
        self._journal: TextIO | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def capabilities(self) -> Capabilities:
        c = self.config
        return Capabilities(
            name=c.name,
            payment_methods=c.methods,
            currencies=c.currencies,
            min_amount_minor=c.min_amount_minor,
            max_amount_minor=c.max_amount_minor,
            supports_manual_capture=c.manual_capture,
            supports_partial_capture=c.partial_capture,
            supports_void=c.void,
            supports_refund=c.refund,
            supports_partial_refund=c.partial_refund,
        )

    async def start(self, events: EventSink) -> None:
        self._events = events
        if self.config.journal:
            # Line-buffered appends: another process may count lines while this one runs.
            self._journal = await asyncio.to_thread(_open_journal, self.config.journal)

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    # --- operations ---------------------------------------------------------------------------

    async def authorize(self, request: AuthorizeRequest) -> OperationResult:
        if self.config.latency_s:
            await asyncio.sleep(self.config.latency_s)
        known = self._ops.get(request.reference)
        self._note("authorize", request.reference, request.amount, known is not None)
        if self.config.unavailable:
            raise UpstreamUnavailableError("the sandbox runs with --unavailable")
        if known is not None:
            return await _current(known)
        method = request.payment_method
        if self.config.decline_all is not None:
            behaviour = Behaviour(Scenario.DECLINE, self.config.decline_all, "S00")
        elif isinstance(method, Card):
            behaviour = card_behaviour(method.number)
        else:
            behaviour = wallet_behaviour(method.auth_code)
        payment = Payment(request.amount, next(self._ids))
        if behaviour.decline is not None:
            final = _declined(behaviour, payment)
        else:
            final = self._approval(payment, behaviour.raw_code)
        scenario = behaviour.scenario
        if scenario is Scenario.APPROVE or scenario is Scenario.DECLINE:
            _book(payment, final, request.capture)
            self._remember(request.reference, Operation(OperationType.AUTHORIZE, final, payment))
            return final
        return await self._authorize_later(request, scenario, payment, final)

    async def capture(self, request: CaptureRequest) -> OperationResult:
        return await self._follow_up(OperationType.CAPTURE, request)

    async def void(self, request: VoidRequest) -> OperationResult:
        return await self._follow_up(OperationType.VOID, request)

    async def refund(self, request: RefundRequest) -> OperationResult:
        return await self._follow_up(OperationType.REFUND, request)

    async def inquire(self, request: InquireRequest) -> OperationResult:
        if self.config.latency_s:
            await asyncio.sleep(self.config.latency_s)
        self._note("inquire", request.reference, request.amount, False)
        known = self._ops.get(request.reference)
        return NOT_FOUND if known is None else known.result

    # --- authorization outcomes ------------------------------------------------------------

    @staticmethod
    def _approval(payment: Payment, raw_code: str) -> OperationResult:
        return OperationResult(
            status=_APPROVED,
            raw_code=raw_code,
            upstream_reference=payment.upstream_reference,
            authorization_code=payment.authorization_code,
        )

    async def _authorize_later(
        self,
        request: AuthorizeRequest,
        scenario: Scenario,
        payment: Payment,
        final: OperationResult,
    ) -> OperationResult:
        """Slow, timeout and pending authorizations: the upstream settles on its own clock."""
        loop = asyncio.get_running_loop()
        reference = request.reference
        pending = OperationResult(
            status=_PENDING,
            message=f"{scenario.value}: awaiting the upstream",
            upstream_reference=payment.upstream_reference,
        )
        operation = Operation(OperationType.AUTHORIZE, pending, payment)
        self._remember(reference, operation, live=True)
        if scenario is Scenario.TIMEOUT:
            # The upstream decided at once; only its answer is lost on the way back.
            self._settle(reference, operation, final, request.capture, announce=False)
            await asyncio.sleep(self.config.hang_s)
            raise UpstreamTimeoutError(f"no answer from the upstream in {self.config.hang_s} s")
        if scenario is Scenario.PENDING:
            delay = self.config.pending_resolve_s
        else:
            delay = self.config.slow_s
            operation.settled = loop.create_future()
        self._timers[reference] = loop.call_later(
            delay, self._settle, reference, operation, final, request.capture
        )
        if operation.settled is None:
            return pending
        return await asyncio.shield(operation.settled)

    def _settle(
        self,
        reference: str,
        operation: Operation,
        final: OperationResult,
        capture: bool,
        announce: bool = True,
    ) -> None:
        """The pretend upstream decides; an answer given as PENDING is announced on WatchEvents."""
        self._timers.pop(reference, None)
        # A slow call's caller gets the answer itself; only a PENDING answer needs announcing.
        announce = announce and operation.settled is None
        if operation.payment is not None:
            _book(operation.payment, final, capture)
        operation.result = final
        if operation.settled is not None and not operation.settled.done():
            operation.settled.set_result(final)
        self._ops.settle(reference)
        if announce and self._events is not None:
            self._events.publish(ChannelEvent(reference, OperationType.AUTHORIZE, final))

    # --- follow-ups ------------------------------------------------------------------------

    async def _follow_up(
        self, op: OperationType, request: CaptureRequest | VoidRequest | RefundRequest
    ) -> OperationResult:
        if self.config.latency_s:
            await asyncio.sleep(self.config.latency_s)
        known = self._ops.get(request.reference)
        name = op.name.lower()
        self._note(name, request.reference, request.amount, known is not None, request)
        if self.config.unavailable:
            raise UpstreamUnavailableError("the sandbox runs with --unavailable")
        if known is not None:
            return await _current(known)
        original = self._ops.get(request.original_reference)
        payment = None if original is None else original.payment
        if payment is None:
            result = _refuse(DeclineCode.INVALID_TRANSACTION, "12", "unknown original payment")
        elif request.amount.currency != payment.amount.currency:
            result = _refuse(DeclineCode.INVALID_TRANSACTION, "12", "currency differs")
        elif isinstance(request, CaptureRequest):
            result = self._capture(payment, request.amount.amount_minor)
        elif isinstance(request, VoidRequest):
            result = self._void(payment)
        else:
            result = self._refund(payment, request.amount.amount_minor)
        if result is _OK:
            assert original is not None
            self._ops.put(request.original_reference, original)  # the payment changed: keep it
            result = OperationResult(
                status=_APPROVED, raw_code="00", upstream_reference=f"sbx-{next(self._ids)}"
            )
        self._remember(request.reference, Operation(op, result))
        return result

    def _capture(self, payment: Payment, amount: int) -> OperationResult:
        if payment.state is not State.AUTHORIZED:
            return _wrong_state("capture", payment)
        if amount > payment.amount.amount_minor:
            return _refuse(DeclineCode.INVALID_AMOUNT, "13", "capture exceeds the authorization")
        if amount < payment.amount.amount_minor and not self.config.partial_capture:
            raise NotSupportedError(f"channel {self.config.name} does not support partial capture")
        payment.state = State.CAPTURED
        payment.captured = amount
        return _OK

    @staticmethod
    def _void(payment: Payment) -> OperationResult:
        if payment.state is not State.AUTHORIZED:
            return _wrong_state("void", payment)
        payment.state = State.VOIDED
        return _OK

    def _refund(self, payment: Payment, amount: int) -> OperationResult:
        if payment.state is not State.CAPTURED:
            return _wrong_state("refund", payment)
        left = payment.captured - payment.refunded
        if amount > left:
            return _refuse(DeclineCode.INVALID_AMOUNT, "13", f"refund exceeds the {left} left")
        if amount < left and not self.config.partial_refund:
            raise NotSupportedError(f"channel {self.config.name} does not support partial refunds")
        payment.refunded += amount
        return _OK

    # --- records and journal -----------------------------------------------------------------

    def _remember(self, reference: str, operation: Operation, *, live: bool = False) -> None:
        self._ops.put(reference, operation, live=live)

    def _note(
        self,
        op: str,
        reference: str,
        amount: Money | None,
        replay: bool,
        follow_up: CaptureRequest | VoidRequest | RefundRequest | None = None,
    ) -> None:
        """Journal what reached the adapter (never card data), for tests in other processes."""
        if self._journal is None:
            return
        line: dict[str, object] = {"ts": time.time(), "op": op, "reference": reference}
        if amount is not None:
            line["amount_minor"] = amount.amount_minor
            line["currency"] = amount.currency
        if follow_up is not None:
            line["original_reference"] = follow_up.original_reference
        line["replay"] = replay
        self._journal.write(json.dumps(line) + "\n")


_OK = OperationResult(status=_APPROVED)


async def _current(operation: Operation) -> OperationResult:
    """A replay's answer: the result so far, after waiting out a slow call still in progress."""
    if operation.settled is not None and not operation.settled.done():
        return await asyncio.shield(operation.settled)
    return operation.result


def _open_journal(path: str) -> TextIO:
    return open(path, "a", buffering=1, encoding="utf-8")


def _book(payment: Payment, result: OperationResult, capture: bool) -> None:
    """Record the upstream's decision on the payment."""
    if result.status is _DECLINED:
        payment.state = State.DECLINED
    elif capture:
        payment.state = State.CAPTURED
        payment.captured = payment.amount.amount_minor
    else:
        payment.state = State.AUTHORIZED


def _declined(behaviour: Behaviour, payment: Payment) -> OperationResult:
    code = behaviour.decline or DeclineCode.DO_NOT_HONOR
    return OperationResult(
        status=_DECLINED,
        decline_code=code,
        raw_code=behaviour.raw_code,
        message=code.name.lower().replace("_", " "),
        upstream_reference=payment.upstream_reference,
    )


def _refuse(code: DeclineCode, raw: str, message: str) -> OperationResult:
    return OperationResult(status=_DECLINED, decline_code=code, raw_code=raw, message=message)


def _wrong_state(what: str, payment: Payment) -> OperationResult:
    message = f"cannot {what} a payment that is {payment.state.value}"
    return _refuse(DeclineCode.INVALID_STATE, "S19", message)
