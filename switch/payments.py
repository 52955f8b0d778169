"""The payment flows: guards, routing, forwarding and recording for each Gateway operation.

Per request: validate (done by the caller), one Redis round trip that claims the idempotency key
with the rate limits and the payment's lock, the forward to a channel, and one round trip that
records the outcome, the idempotent response and the journal entry together. The work after the
claim is shielded from the caller's cancellation, so a caller who leaves never leaves a payment
half written.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.sdk.runtime import IdleCollector
from payswitch.channel.v1 import channel_service_pb2 as ch
from payswitch.common.v1 import payment_method_pb2
from switch import errors, lifecycle
from switch.cards import Fingerprinter, Vault
from switch.config import ChannelConfig, MerchantConfig
from switch.metrics import Metrics
from switch.model import (
    METHOD_CARD,
    OP_AUTHORIZE,
    OP_CAPTURE,
    OP_REFUND,
    OP_VOID,
    OUTCOME_APPROVED,
    OUTCOME_DECLINED,
    OUTCOME_NOT_FOUND,
    REVIEW_FORWARDED,
    REVIEW_HELD,
    RISK_ALLOW,
    RISK_REJECT,
    STATUS_PENDING,
    ChannelResult,
    Operation,
    Payment,
    Risk,
)
from switch.pool import NotSent, Pool, jitter, money
from switch.records import (
    authorize_reference,
    held_binding,
    journal_entry,
    new_payment_id,
    now_ms,
    reference,
    risk_declined,
    summarize,
    with_reference,
    without_cvc,
)
from switch.risk import RiskEngine
from switch.routing import Router, RouteRequest
from switch.store import Claimed, Limit, Store

log = logging.getLogger("payswitch.payments")

# Time kept back from the caller's deadline to record the outcome after the channel answers.
RECORD_RESERVE_S = 0.05
# A cascade needs at least this much of the caller's deadline left to be worth starting.
CASCADE_MIN_S = 0.2

Render = Callable[[Operation, Payment], bytes]


@dataclass(slots=True)
class Timing:
    """One request's time spent waiting on channels (to separate it from the switch's own), and
    whether its caller can cancel it: a unary call can (deadline, disconnect), a request of a
    stream cannot (it runs in a task of its own), so only the former needs its work shielded."""

    channel_s: float = 0.0
    cancellable: bool = True


class PaymentService:
    """Runs every state-changing flow; the server turns protos into calls on it and back."""

    def __init__(
        self,
        *,
        store: Store,
        pool: Pool,
        router: Router[Any],
        fingerprints: Fingerprinter,
        channels: Sequence[ChannelConfig],
        metrics: Metrics,
        render: Render,
        on_change: Callable[[Payment], None],
        initial_backoff_ms: int,
        risk: RiskEngine,
        vault: Vault,
        record_outcome: Callable[[str, bool], None] | None = None,
        idle: IdleCollector | None = None,
    ) -> None:
        self._store = store
        self._pool = pool
        self._router = router
        self._fp = fingerprints
        self._limits = {c.name: Limit.per_second(c.rate_per_s, c.burst) for c in channels}
        self._timeouts = {c.name: c.timeout_ms / 1000 for c in channels}
        self._metrics = metrics
        self._render = render
        self._on_change = on_change
        self._backoff_ms = initial_backoff_ms
        self._record_outcome = record_outcome
        self._merchant_limits: dict[str, Limit] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._risk = risk
        self._vault = vault
        # Work that outlives its caller (a hang-up) still counts as a request in flight.
        self._idle = idle or IdleCollector()

    def _merchant_limit(self, m: MerchantConfig) -> Limit:
        limit = self._merchant_limits.get(m.id)
        if limit is None:
            limit = self._merchant_limits[m.id] = Limit.per_second(m.rate_per_s, m.burst)
        return limit

    # --- authorize ------------------------------------------------------------------------

    async def authorize(
        self,
        *,
        merchant: MerchantConfig,
        idempotency_key: str,
        canonical: bytes,
        amount: int,
        currency: str,
        method: payment_method_pb2.PaymentMethod,
        auto_capture: bool,
        merchant_reference: str,
        description: str,
        deadline_s: float | None,
        timing: Timing,
    ) -> bytes:
        summary = summarize(method, self._fp)
        candidates = self._router.candidates(
            RouteRequest(
                method=summary.type,
                currency=currency,
                amount=amount,
                manual_capture=not auto_capture,
                card_bin=summary.card_bin,
            )
        )
        check = self._risk.check(
            merchant=merchant.id,
            amount=amount,
            currency=currency,
            method=summary,
            card_prefix=method.card.number[:8] if summary.type is METHOD_CARD else "",
        )
        pid = new_payment_id()
        t = now_ms()
        ref = reference(merchant.id, pid, OP_AUTHORIZE)
        payment = Payment(
            id=pid,
            merchant_id=merchant.id,
            status=STATUS_PENDING,
            currency=currency,
            amount=amount,
            auto_capture=auto_capture,
            method=summary,
            channel=candidates[0].name,
            create_ms=t,
            update_ms=t,
            merchant_reference=merchant_reference,
            description=description,
            pending_op=OP_AUTHORIZE,
            pending_ref=ref,
            pending_amount=amount,
            busy=ref,
            pending_idem=self._store.idem_key(merchant.id, idempotency_key),
            version=1,
            status_message="forwarding to the channel",
            risk=Risk(check.decision, check.rule),
        )
        claimed = await self._store.claim_authorize(
            merchant=merchant.id,
            idempotency_key=idempotency_key,
            fingerprint=self._fp.request(b"Authorize\x00" + canonical),
            payment=payment,
            merchant_limit=self._merchant_limit(merchant),
            candidates=[(c.name, self._limits[c.name]) for c in candidates],
            risk_spec=check.spec,
            risk_keys=check.keys,
        )
        replay = self._refusal(claimed, "Authorize")
        if replay is not None:
            return replay
        tail = candidates[claimed.index :]
        if claimed.index:
            payment = payment.evolve(channel=tail[0].name)
        if claimed.risk is not None:
            if claimed.risk != payment.risk:
                payment = payment.evolve(risk=claimed.risk)
            if claimed.risk.decision is not RISK_ALLOW:
                return await self._shielded(self._hold_or_reject(payment, method), timing)
        request = ch.AuthorizeRequest(
            reference=ref,
            merchant_id=merchant.id,
            # A dict is built in place; a Money message would be copied in (half the cost).
            amount={"amount_minor": amount, "currency": currency},  # type: ignore[arg-type]
            payment_method=method,
            capture=auto_capture,
            description=description,
        )
        names = [c.name for c in tail]
        return await self._shielded(
            self._forward_authorize(payment, names, request, deadline_s, timing), timing
        )

    async def _forward_authorize(
        self,
        payment: Payment,
        names: list[str],
        request: ch.AuthorizeRequest,
        deadline_s: float | None,
        timing: Timing,
    ) -> bytes:
        """Send to the candidates in turn: on to the next when one certainly did not take it,
        or (with a new reference) after a decline marked retryable elsewhere; never after an
        unknown outcome."""
        started = time.monotonic()
        last: NotSent | None = None
        declined: tuple[Payment, ChannelResult] | None = None
        cascaded = 0
        for i, name in enumerate(names):
            left = None if deadline_s is None else deadline_s - (time.monotonic() - started)
            try:
                result = await self._send(name, OP_AUTHORIZE, request, left, timing)
            except NotSent as exc:
                last = exc
                log.warning(
                    "channel did not take the request; trying the next",
                    extra={"channel": name, "pid": payment.id},
                )
                if i + 1 < len(names):
                    payment = await self._hand_over(payment, names[i + 1], name)
                continue
            self.learn(name, OP_AUTHORIZE, result)
            current = payment if payment.channel == name else payment.evolve(channel=name)
            if (
                i + 1 < len(names)
                and result.decline is not None
                and self._router.cascades_after(result.decline.code, cascaded)
                and (left is None or left - (time.monotonic() - started) > CASCADE_MIN_S)
            ):
                moved = await self._cascade(current, request.reference, result, names[i + 1])
                if moved is not None:
                    payment, declined, cascaded = moved, (current, result), cascaded + 1
                    request = with_reference(request, moved.pending_ref)
                    continue
            return await self._record(
                current, OP_AUTHORIZE, request.reference, payment.amount, result
            )
        if declined is not None:
            return await self._declined_then_unreachable(payment, request.reference, *declined)
        # Nothing was sent anywhere: the payment failed without a charge, and the key is freed
        # so the caller may retry with it.
        failed = lifecycle.settle(
            payment,
            op=OP_AUTHORIZE,
            reference=request.reference,
            amount=payment.amount,
            result=ChannelResult(outcome=OUTCOME_NOT_FOUND),
            now_ms=now_ms(),
        ).evolve(status_message="every channel was unreachable; nothing was sent or charged")
        await self._store.complete(
            before=payment,
            after=failed,
            idempotency="release",
            idem_key=payment.pending_idem,
            journal=journal_entry(failed, OP_AUTHORIZE),
        )
        raise errors.ChannelUnavailable(
            f"no channel could be reached ({last}); nothing was charged "
            "and the same key may be retried"
        )

    async def _hold_or_reject(
        self, payment: Payment, method: payment_method_pb2.PaymentMethod
    ) -> bytes:
        """Record what the risk rules decided instead of forwarding: DECLINED, or held for review
        with the instrument sealed so that an approval can still send it."""
        risk = payment.risk
        assert risk is not None
        t = now_ms()
        if risk.decision is RISK_REJECT:
            after = risk_declined(
                payment, rule=risk.rule, message=f"rejected by the risk rule {risk.rule}", t=t
            ).evolve(channel="")
        else:
            after = payment.evolve(
                risk=dataclasses.replace(risk, review=REVIEW_HELD),
                vault=self._vault.seal(without_cvc(method), held_binding(payment)),
                version=payment.version + 1,
                update_ms=t,
                status_message=f"held for risk review (rule {risk.rule}); not sent to any channel",
            )
        self._metrics.risk_stopped.labels(risk.decision.name, risk.rule).inc()
        log.info(
            "risk rules stopped a payment",
            extra={"pid": payment.id, "decision": risk.decision.name, "rule": risk.rule},
        )
        response = await self.persist(payment, after, OP_AUTHORIZE, None)
        if response is None:
            current = await self._store.get(payment.merchant_id, payment.id)
            return self._render(OP_AUTHORIZE, current or after)
        return response

    async def forward_held(self, p: Payment) -> bool:
        """Send the authorization of a held payment an operator approved, and record its outcome.
        False when no channel could take it now (the caller tries again later)."""
        assert p.risk is not None
        sent = p.evolve(risk=dataclasses.replace(p.risk, review=REVIEW_FORWARDED), vault="")
        plain = self._vault.open(p.vault, held_binding(p))
        if plain is None or p.channel not in self._timeouts:
            failed = lifecycle.settle(
                sent,
                op=OP_AUTHORIZE,
                reference=p.pending_ref,
                amount=p.amount,
                result=ChannelResult(outcome=OUTCOME_NOT_FOUND),
                now_ms=now_ms(),
            ).evolve(
                status_message="the approved payment could not be sent (its instrument or "
                "channel is gone); nothing was charged"
            )
            await self.persist(sent, failed, OP_AUTHORIZE, None)
            return True
        request = ch.AuthorizeRequest(
            reference=p.pending_ref,
            merchant_id=p.merchant_id,
            amount=money(p.amount, p.currency),
            payment_method=payment_method_pb2.PaymentMethod.FromString(plain),
            capture=p.auto_capture,
            description=p.description,
        )
        try:
            result = await self._send(p.channel, OP_AUTHORIZE, request, None, Timing())
        except NotSent:
            return False
        await self._record(sent, OP_AUTHORIZE, p.pending_ref, p.amount, result)
        return True

    async def stop_sending(self, p: Payment, why: str) -> None:
        """Give up sending an approved payment no channel would take (`why`): its sealed
        instrument is dropped, so it is never sent. It stays pending under its reference, to be
        resolved like any unknown outcome: a try cut short by a restart may have reached the
        channel, whose Inquire then tells; one that never got it fails it, nothing charged."""
        assert p.risk is not None
        after = p.evolve(
            risk=dataclasses.replace(p.risk, review=REVIEW_FORWARDED),
            vault="",
            version=p.version + 1,
            update_ms=now_ms(),
            status_message=f"the approved payment was not sent ({why}); its card is no longer "
            "kept, and the channel is asked whether it ever got it",
        )
        written = await self._store.complete(
            before=p,
            after=after,
            idempotency="none",
            pending_at_ms=after.update_ms,
            journal=None,
        )
        if written:
            self._on_change(after)

    async def _hand_over(self, p: Payment, to: str, unreachable: str) -> Payment:
        """Write that the payment now goes to `to` before anything is sent there (a rare path:
        `unreachable` certainly did not take it). A switch that stops while `to` has the request
        then leaves a payment the reconciler asks `to` about, not the channel that never saw it.
        The write carries no journal entry: nothing happened to the payment yet."""
        moved = p.evolve(
            channel=to,
            version=p.version + 1,
            update_ms=now_ms(),
            status_message=f"channel {unreachable} could not be reached; forwarding to {to}",
        )
        try:
            written = await self._store.complete(
                before=p,
                after=moved,
                idempotency="none",
                pending_at_ms=moved.update_ms + self._store.in_flight_grace_ms,
                journal=None,
            )
        except errors.StoreUnavailable as exc:
            # The store's own message ("nothing was sent to any channel") is false after a
            # cascade: a channel was called and declined. What holds either way: nothing charged.
            raise errors.StoreUnavailable(
                f"the payment store (Redis) became unavailable while payment {p.id} was being "
                f"forwarded to channel {to}; it was not sent there and nothing was charged; "
                "GetPayment tells its outcome once Redis is back"
            ) from exc
        if not written:
            # Only this request holds a payment it has just claimed; a version that moved means
            # the record is not what this flow believes, so nothing more is sent.
            raise errors.SwitchError(f"payment {p.id} changed while it was being forwarded")
        return moved

    async def _cascade(
        self, p: Payment, ref: str, result: ChannelResult, to: str
    ) -> Payment | None:
        """Record the decline (payment record and journal) and hand the payment to `to` under a
        new reference, before anything is sent there: a switch that stops in between leaves a
        payment the reconciler asks the right channel about. None: stay with the decline."""
        t = now_ms()
        declined, moved = lifecycle.cascade(p, ref=ref, result=result, to=to, now_ms=t)
        try:
            written = await self._store.complete(
                before=p,
                after=moved,
                idempotency="none",
                pending_at_ms=t + self._store.in_flight_grace_ms,
                journal=journal_entry(declined, OP_AUTHORIZE, result.latency_us),
            )
        except errors.StoreUnavailable:
            return None
        if not written:
            return None
        self._metrics.cascades.labels(p.channel).inc()
        log.info(
            "retryable decline: trying the next channel with a new reference",
            extra={"pid": p.id, "channel": p.channel, "next": to, "reference": moved.pending_ref},
        )
        return moved

    async def _declined_then_unreachable(
        self, p: Payment, ref: str, declined_on: Payment, result: ChannelResult
    ) -> bytes:
        """After a cascade no further channel took the request: the last decline stands. The
        journal says what happened last (nothing reached this channel); the record says why."""
        unsent, final = lifecycle.unreachable_after_cascade(
            p, ref=ref, declined_on=declined_on.channel, result=result, now_ms=now_ms()
        )
        response = await self.persist(
            p, final, OP_AUTHORIZE, None, journal=journal_entry(unsent, OP_AUTHORIZE)
        )
        if response is None:
            current = await self._read_back(p)
            return self._render(OP_AUTHORIZE, current or final)
        return response

    def learn(self, channel: str, op: Operation, result: ChannelResult) -> None:
        """Count a channel's known answer to an authorization toward its approval rate."""
        if (
            op is OP_AUTHORIZE
            and self._record_outcome is not None
            and result.outcome in (OUTCOME_APPROVED, OUTCOME_DECLINED)
        ):
            self._record_outcome(channel, result.outcome is OUTCOME_APPROVED)

    # --- capture, void, refund ------------------------------------------------------------

    async def follow_up(
        self,
        *,
        op: Operation,
        merchant: MerchantConfig,
        idempotency_key: str,
        canonical: bytes,
        payment_id: str,
        amount: int | None,
        currency: str,
        reason: str,
        deadline_s: float | None,
        timing: Timing,
    ) -> bytes:
        ref = reference(merchant.id, payment_id, op)
        claimed = await self._store.claim_followup(
            merchant=merchant.id,
            idempotency_key=idempotency_key,
            fingerprint=self._fp.request(op.name.encode() + b"\x00" + canonical),
            payment_id=payment_id,
            operation=op.name,
            amount=amount,
            currency=currency,
            reference=ref,
            merchant_limit=self._merchant_limit(merchant),
            channel_limits=list(self._limits.items()),
        )
        replay = self._refusal(claimed, op.name.title(), payment_id=payment_id)
        if replay is not None:
            return replay
        payment = claimed.payment
        assert payment is not None
        value = claimed.amount
        unsupported = self._unsupported(payment, op, value)
        if unsupported:
            await self._store.release(
                merchant=merchant.id,
                idempotency_key=idempotency_key,
                payment_id=payment_id,
                reference=ref,
            )
            raise errors.OperationNotSupported(unsupported)
        request = self._followup_request(payment, op, ref, value, reason)
        return await self._shielded(
            self._forward_followup(
                payment, op, ref, value, reason, request, idempotency_key, deadline_s, timing
            ),
            timing,
        )

    def _unsupported(self, p: Payment, op: Operation, value: int) -> str:
        client = self._pool.channels.get(p.channel)
        caps = client.capabilities if client else None
        if caps is None:
            return ""
        if op is OP_CAPTURE and value < p.authorized and not caps.partial_capture:
            return f"channel {p.channel} does not support partial capture"
        if op is OP_VOID and not caps.void:
            return f"channel {p.channel} does not support voids"
        if op is OP_REFUND and not caps.refund:
            return f"channel {p.channel} does not support refunds"
        if (
            op is OP_REFUND
            and (value < p.captured - p.refunded or p.refunded)
            and not caps.partial_refund
        ):
            return f"channel {p.channel} does not support partial refunds"
        return ""

    def _followup_request(
        self, p: Payment, op: Operation, ref: str, value: int, reason: str
    ) -> object:
        common: dict[str, Any] = {
            "reference": ref,
            "merchant_id": p.merchant_id,
            "original_reference": authorize_reference(p),
            "upstream_reference": p.upstream_reference,
            "amount": money(value, p.currency),
        }
        if op is OP_CAPTURE:
            return ch.CaptureRequest(**common, authorized_amount=money(p.authorized, p.currency))
        if op is OP_VOID:
            return ch.VoidRequest(**common)
        return ch.RefundRequest(
            **common, captured_amount=money(p.captured, p.currency), reason=reason
        )

    async def _forward_followup(
        self,
        payment: Payment,
        op: Operation,
        ref: str,
        value: int,
        reason: str,
        request: object,
        idempotency_key: str,
        deadline_s: float | None,
        timing: Timing,
    ) -> bytes:
        try:
            result = await self._send(payment.channel, op, request, deadline_s, timing)
        except NotSent as exc:
            await self._store.release(
                merchant=payment.merchant_id,
                idempotency_key=idempotency_key,
                payment_id=payment.id,
                reference=ref,
            )
            raise errors.ChannelUnavailable(
                f"channel {payment.channel} could not be reached ({exc}); nothing was sent "
                "and the same key may be retried"
            ) from exc
        return await self._record(payment, op, ref, value, result, reason=reason)

    # --- shared steps ---------------------------------------------------------------------

    def _refusal(self, c: Claimed, rpc: str, payment_id: str = "") -> bytes | None:
        """Turn a claim that did not start a new operation into a replay or an error."""
        if c.kind == "new":
            return None
        if c.kind == "replay":
            self._metrics.replays.labels(rpc).inc()
            return c.response
        if c.kind == "in_progress":
            raise errors.IdempotencyKeyInProgress(
                "a request with this idempotency key is still being processed; "
                "retry later with the same key"
            )
        if c.kind == "reused":
            raise errors.IdempotencyKeyReused(
                "this idempotency key was already used for a different request; use a new key"
            )
        if c.kind == "limited":
            self._metrics.rate_limited.labels(c.detail).inc()
            who = f"channel {c.channel}" if c.detail == "channel" else "the merchant"
            raise errors.RateLimited(
                f"rate limit of {who} exceeded; retry after {c.retry_after_ms} ms",
                retry_after_ms=c.retry_after_ms,
                channel=c.channel if c.detail == "channel" else "",
            )
        if c.kind == "not_found":
            raise errors.PaymentNotFound(f"no payment {payment_id}")
        if c.kind == "currency":
            raise errors.InvalidRequest(
                [("amount.currency", f"must be the payment's currency {c.detail}")]
            )
        if c.kind == "busy":
            raise errors.PaymentBusy(
                f"payment {payment_id} has an operation whose outcome is not known yet; retry later"
            )
        if c.kind == "state":
            raise errors.InvalidPaymentState(
                f"{rpc.lower()} is not allowed on a payment that is {c.detail}",
                subject=f"payments/{payment_id}",
            )
        if c.kind == "amount":
            raise errors.AmountTooLarge(
                f"the amount is more than the {c.detail} that can be "
                + ("captured" if rpc == "Capture" else "refunded"),
                subject=f"payments/{payment_id}",
            )
        raise errors.SwitchError(f"unexpected claim answer {c.kind!r}")

    async def _send(
        self, channel: str, op: Operation, request: object, deadline_s: float | None, timing: Timing
    ) -> ChannelResult:
        timeout = self._timeouts[channel]
        if deadline_s is not None:
            timeout = max(0.01, min(timeout, deadline_s - RECORD_RESERVE_S))
        start = time.perf_counter()
        try:
            result = await self._pool.call(channel, op, request, timeout)
        finally:
            spent = time.perf_counter() - start
            timing.channel_s += spent
            self._metrics.channel_call_done(channel, spent)
        self._metrics.channel_answered(channel, op, result.outcome)
        return result.timed(int(spent * 1_000_000))

    async def _record(
        self,
        payment: Payment,
        op: Operation,
        ref: str,
        value: int,
        result: ChannelResult,
        reason: str = "",
    ) -> bytes:
        after = lifecycle.settle(
            payment,
            op=op,
            reference=ref,
            amount=value,
            result=result,
            now_ms=now_ms(),
            reason=reason,
        )
        pending_at = after.update_ms + self._backoff_ms if after.status is STATUS_PENDING else None
        response = await self.persist(payment, after, op, pending_at, result.latency_us)
        if response is None:
            # A resolver recorded an outcome first (an event or the reconciler): that one stands.
            current = await self._read_back(payment)
            return self._render(op, current or after)
        return response

    async def _read_back(self, p: Payment) -> Payment | None:
        """The payment as the resolver that came first recorded it, read after a channel call:
        if Redis cannot be read now, the store's own message ("nothing was sent to any
        channel") would be false, so the error says what did happen."""
        try:
            return await self._store.get(p.merchant_id, p.id)
        except errors.StoreUnavailable as exc:
            raise errors.StoreUnavailable(
                f"the request reached a channel and the outcome of payment {p.id} is recorded, "
                "but the payment store (Redis) could not be read to answer with it; "
                "GetPayment tells the outcome"
            ) from exc

    async def persist(
        self,
        before: Payment,
        after: Payment,
        op: Operation,
        pending_at: int | None,
        latency_us: int | None = None,
        journal: list[str] | None = None,
    ) -> bytes | None:
        """Write an outcome and return the RPC response it makes, or None when another resolver
        changed the payment first. If Redis is down, the write is retried in the background
        until it lands (nothing is lost) and the response is returned at once."""
        response = self._render(op, after)
        kwargs: dict[str, Any] = {
            "before": before,
            "after": after,
            "idempotency": "done" if before.pending_idem else "none",
            "idem_key": before.pending_idem,
            "response": response,
            "pending_at_ms": pending_at,
            "journal": journal or journal_entry(after, op, latency_us),
        }
        try:
            written = await self._store.complete(**kwargs)
        except errors.StoreUnavailable:
            log.error(
                "could not record an outcome; retrying until Redis is back", extra={"pid": after.id}
            )
            task = asyncio.create_task(self._retry_persist(kwargs))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return response
        if not written:
            return None
        self._on_change(after)
        return response

    def notify(self, p: Payment) -> None:
        """Tell watchers of a change recorded outside `persist` (an expired review)."""
        self._on_change(p)

    async def _retry_persist(self, kwargs: dict[str, Any]) -> None:
        attempt = 0
        while True:
            await asyncio.sleep(jitter(100, attempt, 5_000) / 1000)
            attempt += 1
            try:
                await self._store.complete(**kwargs)
            except errors.StoreUnavailable:
                continue
            except Exception:
                # Not a Redis that is down: logged (the first time and every 50th), and tried
                # again all the same. An outcome a channel gave is never dropped while the
                # switch runs.
                if attempt % 50 == 1:
                    log.exception(
                        "recording an outcome failed; trying again",
                        extra={"pid": kwargs["after"].id, "attempts": attempt},
                    )
                continue
            after = kwargs["after"]
            assert isinstance(after, Payment)
            self._on_change(after)
            log.info(
                "recorded an outcome after Redis came back",
                extra={"pid": after.id, "attempts": attempt},
            )
            return

    async def _shielded(self, work: Coroutine[Any, Any, bytes], timing: Timing) -> bytes:
        # The caller may cancel (deadline, disconnect); the forward and the record must not stop.
        if not timing.cancellable:
            return await work
        if self._loop is None:
            # Kept: asyncio.create_task looks the loop up, a getpid() system call on 3.11.
            self._loop = asyncio.get_running_loop()
        # The caller waits on a plain future the work fills in as it ends: one turn of the loop
        # sooner than awaiting the task through asyncio.shield (the task's end, then the
        # shield's callback, then the caller's wake-up, each a turn). If the caller is cancelled,
        # only its future is; the task runs on.
        answer: asyncio.Future[bytes] = self._loop.create_future()
        task = self._loop.create_task(_deliver(work, answer))  # not ensure_future: type checks
        self._background.add(task)
        self._idle.begin()
        task.add_done_callback(self._done)
        return await answer

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        self._idle.end()

    async def drain(self, timeout_s: float) -> None:
        """Wait for shielded work and pending writes, at most `timeout_s`."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=timeout_s)


async def _deliver(work: Coroutine[Any, Any, bytes], answer: asyncio.Future[bytes]) -> None:
    """Run `work` to its end and hand its result or error to `answer`, if anyone still waits."""
    try:
        result = await work
    except asyncio.CancelledError:  # the task itself was cancelled (shutdown): so is the answer
        answer.cancel()
        raise
    except BaseException as exc:  # not swallowed: handed to the caller, who raises it
        if not answer.done():
            answer.set_exception(exc)
        elif not isinstance(exc, errors.SwitchError):
            log.error("unexpected failure after the caller left", exc_info=exc)
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt, SystemExit: the process is stopping
        return
    if not answer.done():
        answer.set_result(result)
