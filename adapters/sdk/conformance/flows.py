"""Conformance checks of flows: capabilities honoured, replays, follow-ups, unknown outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import grpc

from adapters.sdk.conformance.answers import client_for, expect_status
from adapters.sdk.conformance.client import (
    ChannelClient,
    ConformanceError,
    Refused,
    expect,
    new_reference,
)
from adapters.sdk.conformance.profile import ConformanceProfile, instrument
from adapters.sdk.conformance.upstream import UpstreamCounter
from adapters.sdk.types import (
    CaptureRequest,
    ChannelEvent,
    OperationResult,
    OperationStatus,
    OperationType,
    PaymentMethodType,
    RefundRequest,
    VoidRequest,
)

APPROVED, DECLINED, PENDING = (
    OperationStatus.APPROVED,
    OperationStatus.DECLINED,
    OperationStatus.PENDING,
)
NOT_SUPPORTED = "ERROR_REASON_OPERATION_NOT_SUPPORTED"


async def _approved_payment(
    client: ChannelClient, profile: ConformanceProfile, *, capture: bool
) -> tuple[str, OperationResult]:
    reference = new_reference("pay")
    result = await client.authorize(profile.authorize(reference, capture=capture))
    expect(result.status is APPROVED, f"the approving instrument answered {result.status.name}")
    return reference, result


def _capture(profile: ConformanceProfile, original: str, amount: int) -> CaptureRequest:
    full = profile.money(profile.amount_minor)
    return CaptureRequest(
        new_reference("cap"), profile.merchant_id, original, "", profile.money(amount), full
    )


def _refund(
    profile: ConformanceProfile, original: str, amount: int, captured: int
) -> RefundRequest:
    return RefundRequest(
        new_reference("ref"),
        profile.merchant_id,
        original,
        "",
        profile.money(amount),
        profile.money(captured),
    )


def _void(profile: ConformanceProfile, original: str) -> VoidRequest:
    money = profile.money(profile.amount_minor)
    return VoidRequest(new_reference("void"), profile.merchant_id, original, "", money)


async def _refused_unacted(
    client: ChannelClient,
    profile: ConformanceProfile,
    label: str,
    call: Awaitable[OperationResult],
    reference: str,
    operation: OperationType,
    original: str = "",
) -> None:
    """`call` must be refused FAILED_PRECONDITION / OPERATION_NOT_SUPPORTED and not acted on."""
    try:
        result = await call
    except Refused as refused:
        expect(
            refused.code == grpc.StatusCode.FAILED_PRECONDITION and refused.reason == NOT_SUPPORTED,
            f"{label}: refused with {refused}, want FAILED_PRECONDITION {NOT_SUPPORTED}",
        )
    else:
        raise ConformanceError(f"{label}: answered {result.status.name} instead of refusing")
    not_found = OperationStatus.NOT_FOUND
    await expect_status(client, reference, operation, not_found, profile, label, original=original)


async def check_capabilities_honoured(target: str, profile: ConformanceProfile) -> None:
    """What Describe leaves out is refused as not supported, and nothing is done about it."""
    async with client_for(target, profile) as client:
        caps = await client.describe()
        auth = profile.authorize
        cases = []
        currency = next(c for c in ("XTS", "XXX", "ZZZ", "XAU") if c not in caps.currencies)
        cases.append((f"currency {currency}", auth(new_reference("cur"), currency=currency)))
        for kind in PaymentMethodType:
            if kind not in caps.payment_methods:
                cases.append((f"method {kind.name}", auth(new_reference("pm"), instrument(kind))))
        if caps.max_amount_minor:
            over = caps.max_amount_minor + 1
            cases.append(("amount over the maximum", auth(new_reference("max"), amount_minor=over)))
        if caps.min_amount_minor > 1:
            under = caps.min_amount_minor - 1
            cases.append(
                ("amount under the minimum", auth(new_reference("min"), amount_minor=under))
            )
        if not caps.supports_manual_capture:
            cases.append(("manual capture", auth(new_reference("man"), capture=False)))
        for label, request in cases:
            call = client.authorize(request)
            await _refused_unacted(
                client, profile, label, call, request.reference, OperationType.AUTHORIZE
            )

        amount = profile.amount_minor
        if caps.supports_manual_capture and not caps.supports_partial_capture and amount > 1:
            original, _ = await _approved_payment(client, profile, capture=False)
            capture = _capture(profile, original, amount - 1)
            call = client.capture(capture)
            await _refused_unacted(
                client, profile, "partial capture", call, capture.reference,
                OperationType.CAPTURE, original,
            )  # fmt: skip
        if not caps.supports_void:
            manual = caps.supports_manual_capture
            original, _ = await _approved_payment(client, profile, capture=not manual)
            void = _void(profile, original)
            await _refused_unacted(
                client, profile, "void", client.void(void), void.reference,
                OperationType.VOID, original,
            )  # fmt: skip
        if not caps.supports_refund or (not caps.supports_partial_refund and amount > 1):
            original, _ = await _approved_payment(client, profile, capture=True)
            if caps.supports_refund:
                label, refund = "partial refund", _refund(profile, original, amount - 1, amount)
            else:
                label, refund = "refund", _refund(profile, original, amount, amount)
            call = client.refund(refund)
            await _refused_unacted(
                client, profile, label, call, refund.reference, OperationType.REFUND, original
            )


def _same(a: OperationResult, b: OperationResult) -> bool:
    keys = ("status", "decline_code", "upstream_reference", "authorization_code")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


async def check_same_reference_not_charged_twice(target: str, profile: ConformanceProfile) -> None:
    """A reference sent again, at once or later, gets the first result and changes nothing."""
    async with client_for(target, profile) as client:
        request = profile.authorize(new_reference("dup"))
        together = await asyncio.gather(*(client.authorize(request) for _ in range(4)))
        later = await client.authorize(request)
        first = together[0]
        expect(first.status is APPROVED, f"the approving instrument answered {first.status.name}")
        expect(
            all(_same(r, first) for r in [*together, later]),
            "the same reference got different answers: "
            + ", ".join(f"{r.status.name}/{r.upstream_reference}" for r in [*together, later]),
        )
        caps = await client.describe()
        amount = profile.amount_minor
        if not caps.supports_refund or not caps.supports_partial_refund or amount < 2:
            return
        original, _ = await _approved_payment(client, profile, capture=True)
        part = amount // 2
        refund = _refund(profile, original, part, amount)
        once, twice = await client.refund(refund), await client.refund(refund)
        expect(once.status is APPROVED, f"a refund of {part} answered {once.status.name}")
        expect(_same(once, twice), "a repeated refund reference got a different answer")
        rest = await client.refund(_refund(profile, original, amount - part, amount))
        expect(
            rest.status is APPROVED,
            f"refunding the remaining {amount - part} answered {rest.status.name}: "
            "the repeated refund was counted twice",
        )


# How many times the same request is sent: all but one at once, then one more after them.
REPEATS = 4


async def _carried_out_once(
    counter: UpstreamCounter,
    operation: OperationType,
    label: str,
    send: Callable[[], Awaitable[OperationResult]],
) -> None:
    before = await counter.carried_out(operation)
    together = await asyncio.gather(*(send() for _ in range(REPEATS - 1)))
    results = [*together, await send()]
    expect(
        all(r.status is APPROVED for r in results),
        f"{label}: answered {', '.join(r.status.name for r in results)}, want APPROVED",
    )
    times = await counter.carried_out(operation) - before
    expect(
        times == 1,
        f"{label} sent {REPEATS} times under one reference was carried out {times} times "
        "upstream, want once",
    )


async def check_replays_charged_once_upstream(target: str, profile: ConformanceProfile) -> None:
    """An authorization, a capture and a refund sent again under their references, at once and
    later, are each carried out once upstream (the profile's counter asks the simulator)."""
    counter = profile.upstream()
    assert counter is not None
    async with client_for(target, profile) as client:
        caps = await client.describe()
        amount = profile.amount_minor
        manual = caps.supports_manual_capture
        auth = profile.authorize(new_reference("once"), capture=not manual)
        await _carried_out_once(
            counter, OperationType.AUTHORIZE, "an authorization", lambda: client.authorize(auth)
        )
        if manual:
            capture = _capture(profile, auth.reference, amount)
            await _carried_out_once(
                counter, OperationType.CAPTURE, "a capture", lambda: client.capture(capture)
            )
        if caps.supports_refund:
            part = amount // 2 if caps.supports_partial_refund and amount > 1 else amount
            refund = _refund(profile, auth.reference, part, amount)
            await _carried_out_once(
                counter, OperationType.REFUND, "a refund", lambda: client.refund(refund)
            )


async def check_supported_operations_work(target: str, profile: ConformanceProfile) -> None:
    """Each follow-up Describe claims works: capture (partial too), void, refund."""
    async with client_for(target, profile) as client:
        caps = await client.describe()
        amount = profile.amount_minor
        captured = amount
        if caps.supports_manual_capture:
            original, _ = await _approved_payment(client, profile, capture=False)
            if caps.supports_partial_capture and amount > 1:
                captured = amount // 2
            capture = _capture(profile, original, captured)
            result = await client.capture(capture)
            expect(
                result.status is APPROVED, f"capture of {captured} answered {result.status.name}"
            )
            await expect_status(
                client, capture.reference, OperationType.CAPTURE, APPROVED, profile, "capture",
                original=original,
            )  # fmt: skip
        else:
            original, _ = await _approved_payment(client, profile, capture=True)
        if caps.supports_refund:
            refund = _refund(profile, original, captured, captured)
            result = await client.refund(refund)
            expect(result.status is APPROVED, f"refund of {captured} answered {result.status.name}")
            await expect_status(
                client, refund.reference, OperationType.REFUND, APPROVED, profile, "refund",
                original=original,
            )  # fmt: skip
        if caps.supports_void and caps.supports_manual_capture:
            original, _ = await _approved_payment(client, profile, capture=False)
            void = _void(profile, original)
            result = await client.void(void)
            expect(result.status is APPROVED, f"void answered {result.status.name}")
            await expect_status(
                client, void.reference, OperationType.VOID, APPROVED, profile, "void",
                original=original,
            )  # fmt: skip


async def _settled(
    client: ChannelClient,
    profile: ConformanceProfile,
    reference: str,
    want: OperationStatus | None,
) -> OperationResult:
    """Inquire until the outcome is no longer PENDING; it must be `want` (None: any final)."""
    deadline = time.monotonic() + profile.resolve_timeout_s
    while True:
        found = await client.inquire(
            reference, OperationType.AUTHORIZE, merchant_id=profile.merchant_id
        )
        expect(
            found.status is not OperationStatus.NOT_FOUND,
            "Inquire said NOT_FOUND for an operation that may have happened",
        )
        if found.status is not PENDING:
            expect(
                found.status is want if want else found.status in (APPROVED, DECLINED),
                f"settled as {found.status.name}, want {want.name if want else 'a final status'}",
            )
            return found
        expect(time.monotonic() < deadline, f"still PENDING after {profile.resolve_timeout_s} s")
        await asyncio.sleep(0.1)


async def check_unknown_outcome_resolves(target: str, profile: ConformanceProfile) -> None:
    """An unknown outcome comes back as an OK PENDING answer, then Inquire tells the outcome."""
    assert profile.unknown_outcome is not None
    reference = new_reference("unk")
    async with client_for(target, profile) as client:
        request = profile.authorize(reference, profile.unknown_outcome)
        try:
            first = await client.authorize(request)
        except Refused as refused:
            message = f"an unknown outcome must be a PENDING answer, got {refused}"
            raise ConformanceError(message) from refused
        expect(first.status is PENDING, f"answered {first.status.name}, want PENDING")
        await _settled(client, profile, reference, profile.unknown_outcome_final)


async def _event_for(client: ChannelClient, reference: str, ready: asyncio.Event) -> ChannelEvent:
    async for event in client.watch(ready):
        if event.reference == reference:
            return event
    raise ConformanceError("WatchEvents ended before announcing the outcome")


async def check_unknown_outcome_announced(target: str, profile: ConformanceProfile) -> None:
    """The settled outcome of a PENDING answer is announced on WatchEvents, as Inquire tells."""
    assert profile.unknown_outcome is not None
    reference = new_reference("evt")
    async with client_for(target, profile) as client:
        ready = asyncio.Event()
        watching = asyncio.ensure_future(_event_for(client, reference, ready))
        try:
            # A worker that sends no initial metadata until the first event still buffers it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), 2.0)
            first = await client.authorize(profile.authorize(reference, profile.unknown_outcome))
            expect(first.status is PENDING, f"answered {first.status.name}, want PENDING")
            try:
                event = await asyncio.wait_for(asyncio.shield(watching), profile.resolve_timeout_s)
            except TimeoutError:
                raise ConformanceError(
                    f"no WatchEvents event for the reference in {profile.resolve_timeout_s} s"
                ) from None
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConformanceError):
                await watching
        expect(event.operation is OperationType.AUTHORIZE, f"event for {event.operation.name}")
        settled = await _settled(client, profile, reference, profile.unknown_outcome_final)
        expect(
            event.result.status is settled.status,
            f"event said {event.result.status.name}, Inquire says {settled.status.name}",
        )


async def check_abandoned_call_is_inquirable(target: str, profile: ConformanceProfile) -> None:
    """A call the caller gave up on is not NOT_FOUND afterwards, and its outcome settles."""
    assert profile.hanging is not None
    reference = new_reference("hang")
    async with client_for(target, profile) as client:
        request = profile.authorize(reference, profile.hanging)
        try:
            first = await client.authorize(request, timeout_s=profile.hang_deadline_s)
        except Refused as refused:
            expect(
                refused.code == grpc.StatusCode.DEADLINE_EXCEEDED,
                f"a hanging call failed with {refused}, want DEADLINE_EXCEEDED",
            )
        else:
            expect(first.status is PENDING, f"a hanging call answered {first.status.name}")
        await _settled(client, profile, reference, None)
