"""Resolves every payment whose outcome is unknown: by Inquire with backoff, or by a channel event.

A payment is in the pending set from the moment its operation is claimed (one held for risk
review joins it when an operator approves it; then the reconciler sends it). The request's own
flow removes it when the outcome is known; otherwise, once its due time passes (a PENDING answer,
or a switch that stopped mid-flight), a reconciler leases it, asks the channel, and records the
answer. Leases and version checks keep two switch instances from applying one outcome twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from payswitch.channel.v1 import channel_service_pb2 as ch
from switch import lifecycle
from switch.config import ReconcilerConfig
from switch.errors import StoreUnavailable
from switch.metrics import Metrics
from switch.model import ChannelResult, Operation, Outcome, Payment, ReviewState
from switch.payments import PaymentService
from switch.pool import NotSent, Pool, jitter, money, result_from_proto
from switch.records import (
    authorize_reference,
    journal_entry,
    now_ms,
    parse_reference,
    review_rejected,
)
from switch.store import Store

log = logging.getLogger("payswitch.reconciler")

LEASE_MS = 10_000
BATCH = 100
# A payment whose resolution keeps failing is retried each time its lease runs out; its failure
# is logged the first time and every this many times after (about every 5 minutes).
FAILURE_LOG_EVERY = 30
# And failures are logged this many a minute at most in all, however many payments fail (a
# release that cannot read the records, a bug): the next logged one says how many were not.
FAILURE_LOGS_PER_MINUTE = 10
# Failure counts kept at most (a count is dropped when its payment resolves); past this many the
# oldest count is dropped, which only makes that payment's next failure logged once more.
FAILURES_KEPT = 10_000
# How often held risk reviews are checked for their timeout.
REVIEW_SWEEP_S = 5.0


class Reconciler:
    """The background resolver of unknown outcomes."""

    def __init__(
        self,
        *,
        store: Store,
        pool: Pool,
        payments: PaymentService,
        merchants: Sequence[str],
        config: ReconcilerConfig,
        metrics: Metrics,
        review_timeout_s: Callable[[], int] = lambda: 3 * 86_400,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._clock = clock
        self._review_timeout_s = review_timeout_s  # read each sweep: a reload may change it
        self._next_sweep = 0.0
        self._pool = pool
        self._payments = payments
        self._merchants = list(merchants)
        self._cfg = config
        self._metrics = metrics
        self._attempts: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self._log_window = (0.0, 0)  # (minute's start, failures logged in it)
        self._not_logged = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="reconciler")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        store_down = False
        failed = 0  # rounds in a row that failed otherwise
        while True:
            try:
                await self.run_once()
                self._metrics.pending.set(await self._store.pending_count(self._merchants))
                if store_down:
                    log.info("reconciler reaches Redis again")
                store_down = False
                failed = 0
            except StoreUnavailable:
                if not store_down:
                    log.warning("reconciler cannot reach Redis; retrying quietly until it can")
                store_down = True
            except Exception:
                # Any other failure ends this round, not the reconciler: pending payments must
                # keep being resolved while the switch runs. Logged the first time and every
                # 100th round in a row.
                if failed % 100 == 0:
                    log.exception(
                        "reconciler round failed; trying again next round",
                        extra={"rounds_failed": failed + 1},
                    )
                failed += 1
            await asyncio.sleep(self._cfg.interval_ms / 1000)

    async def run_once(self) -> int:
        """Lease and resolve every due payment once; returns how many were looked at."""
        seen = 0
        for merchant in self._merchants:
            try:
                due = await self._store.lease_due(merchant, lease_ms=LEASE_MS, batch=BATCH)
            except StoreUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001 (logged in _failed) this merchant's only
                self._failed(merchant, "", exc)
                continue
            seen += len(due)
            done = await asyncio.gather(
                *(self._resolve(merchant, pid) for pid in due), return_exceptions=True
            )
            down = None
            for pid, outcome in zip(due, done, strict=True):
                if isinstance(outcome, StoreUnavailable):
                    down = down or outcome
                elif isinstance(outcome, Exception):
                    self._failed(merchant, pid, outcome)
                elif isinstance(outcome, BaseException):
                    raise outcome  # not the payment's failure: a cancellation, SystemExit
                else:
                    self._failures.pop(pid, None)
            if down is not None:
                raise down  # Redis is away: the rest of the round would meet it too
        if self._clock() >= self._next_sweep:
            self._next_sweep = self._clock() + REVIEW_SWEEP_S
            await self.expire_reviews()
        return seen

    def _failed(self, merchant: str, payment_id: str, exc: Exception) -> None:
        """One payment's resolution or review sweep failed (a record this switch cannot read, a
        bug; `payment_id` empty: leasing the merchant's due payments). It must not hold up the
        others, so it is logged, within bounds, and tried again later (a resolution once its
        lease runs out)."""
        if payment_id not in self._failures and len(self._failures) >= FAILURES_KEPT:
            del self._failures[next(iter(self._failures))]  # the oldest
        n = self._failures.get(payment_id, 0)
        self._failures[payment_id] = n + 1
        if n % FAILURE_LOG_EVERY:
            return
        now = self._clock()
        start, logged = self._log_window
        if now - start >= 60:
            start, logged = now, 0
        if logged >= FAILURE_LOGS_PER_MINUTE:
            self._not_logged += 1
            self._log_window = (start, logged)
            return
        self._log_window = (start, logged + 1)
        log.error(
            "cannot resolve a pending payment; trying it again later",
            exc_info=exc,
            extra={
                "merchant": merchant,
                "pid": payment_id,
                "failures": n + 1,
                "failures_not_logged": self._not_logged,  # of others, since the last one logged
            },
        )
        self._not_logged = 0

    async def expire_reviews(self) -> int:
        """Reject the payments held for risk review longer than the review timeout: nobody
        decided, so nothing is sent, and their sealed instruments are dropped."""
        expired = 0
        cutoff = now_ms() - self._review_timeout_s() * 1000
        for merchant in self._merchants:
            for pid in await self._store.held_before(merchant, cutoff, BATCH):
                try:
                    expired += await self._expire_review(merchant, pid)
                except StoreUnavailable:
                    raise
                except Exception as exc:  # noqa: BLE001 (logged in _failed) this payment's only
                    self._failed(merchant, pid, exc)
        return expired

    async def _expire_review(self, merchant: str, payment_id: str) -> int:
        p = await self._store.get(merchant, payment_id)
        if p is None or p.risk is None or p.risk.review is not ReviewState.HELD:
            return 0
        after = review_rejected(p, why="risk review not decided in time", t=now_ms())
        journal = journal_entry(after, Operation.AUTHORIZE)
        if not await self._store.reject_held(p, after, journal):
            return 0
        self._payments.notify(after)
        log.info("risk review expired", extra={"pid": p.id, "rule": p.risk.rule})
        return 1

    async def _resolve(self, merchant: str, payment_id: str) -> None:
        p = await self._store.get(merchant, payment_id)
        if p is None or p.pending_op is None:
            await self._store.forget_pending(merchant, payment_id)
            self._attempts.pop(payment_id, None)
            return
        if p.risk is not None and p.risk.review is ReviewState.APPROVED:
            # Approved after a risk review and never sent: send it now (under its reference, so
            # a resend after a crash is answered from the channel's record, not charged twice).
            if await self._payments.forward_held(p):
                return
            # No channel took it now. Tried for as long after the approval as a review may wait
            # for its decision; after that its sealed card is not kept any longer.
            limit_s = self._review_timeout_s()
            if now_ms() - p.update_ms >= limit_s * 1000:
                log.warning("an approved payment was not sent in time", extra={"pid": p.id})
                await self._payments.stop_sending(p, f"no channel took it within {limit_s} s")
            else:
                await self._later(p)
            return
        request = ch.InquireRequest(
            reference=p.pending_ref,
            merchant_id=merchant,
            operation=p.pending_op.value,  # type: ignore[arg-type]
            original_reference=authorize_reference(p),
            amount=money(p.pending_amount, p.currency),
        )
        try:
            result = await self._pool.inquire(p.channel, request, timeout_s=5.0)
        except NotSent as exc:
            log.info("inquiry not possible now", extra={"pid": p.id, "why": str(exc)})
            await self._later(p)
            return
        if result.outcome is Outcome.PENDING:
            await self._later(p)
            return
        await self.apply(p, result, source="inquire")

    async def _later(self, p: Payment) -> None:
        n = self._attempts.get(p.id, 0)
        self._attempts[p.id] = n + 1
        delay = self._cfg.initial_backoff_ms + jitter(
            self._cfg.initial_backoff_ms, n, self._cfg.max_backoff_ms
        )
        await self._store.reschedule(p.merchant_id, p.id, now_ms() + delay)

    async def apply(self, p: Payment, result: ChannelResult, *, source: str) -> bool:
        """Record a known outcome of the payment's pending operation."""
        assert p.pending_op is not None
        op = p.pending_op
        after = lifecycle.settle(
            p,
            op=op,
            reference=p.pending_ref,
            amount=p.pending_amount,
            result=result,
            now_ms=now_ms(),
        )
        written = await self._payments.persist(p, after, op, None) is not None
        if written:
            self._payments.learn(p.channel, op, result)
            self._attempts.pop(p.id, None)
            self._metrics.resolutions.labels(source, result.outcome.name).inc()
            log.info(
                "resolved an unknown outcome",
                extra={"pid": p.id, "op": op.name, "status": after.status.name, "source": source},
            )
        return written

    async def on_event(self, channel: str, event: ch.WatchEventsResponse) -> None:
        """A channel announced an outcome: record it if it resolves a pending operation."""
        parsed = parse_reference(event.reference)
        if parsed is None:
            return
        merchant, payment_id = parsed
        if merchant not in self._merchants:
            return
        result = result_from_proto(event.result)
        if result.outcome is Outcome.PENDING:
            return
        # The request's own write (PENDING) may land between our read and our write; then the
        # version check refuses ours, and we read again while the operation is still pending.
        for _ in range(5):
            p = await self._store.get(merchant, payment_id)
            if p is None or p.pending_ref != event.reference or p.channel != channel:
                return  # resolved already, or not its operation: duplicates change nothing
            if await self.apply(p, result, source="event"):
                return
