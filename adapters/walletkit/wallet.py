"""The flows both wallet channels share: payment-code checks, once-per-reference, polling.

A wallet channel subclasses `WalletAdapter` and writes only its wire flows (`_pay`, `_void`,
`_refund`, `_resolve`) and its transport's opening and closing; the ChannelAdapter methods,
the memo of results, the background poller and the tuning flags live here.
"""

from __future__ import annotations

import abc
import argparse
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

from adapters.sdk.adapter import EventSink
from adapters.sdk.errors import InvalidRequestError, NotSupportedError
from adapters.sdk.types import (
    AuthorizeRequest,
    Capabilities,
    CaptureRequest,
    InquireRequest,
    Money,
    OperationResult,
    OperationStatus,
    OperationType,
    PaymentMethodType,
    RefundRequest,
    VoidRequest,
    Wallet,
)
from adapters.walletkit.httpclient import HttpClient
from adapters.walletkit.memo import OpenOperation, OperationMemo
from adapters.walletkit.openlog import OpenLog
from adapters.walletkit.watcher import PendingWatcher

log = logging.getLogger(__name__)

CNY = "CNY"
# Both wallets take at most 100 000 000 yuan in one payment.
MAX_AMOUNT_FEN = 100_000_000_00
# The raw code of a success held back because the platform reports another amount than asked.
AMOUNT_MISMATCH = "AMOUNT_MISMATCH"


@dataclass(frozen=True, slots=True)
class Tuning:
    """Transport, polling and state settings every wallet channel takes."""

    timeout_s: float = 10.0
    connect_timeout_s: float = 2.0
    max_connections: int = 32
    poll_interval_s: float = 3.0
    poll_for_s: float = 60.0
    # Where the operations sent and not answered yet are kept across restarts; None: memory.
    state_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise ValueError("timeout_s and connect_timeout_s: must be positive")
        if self.max_connections < 1:
            raise ValueError("max_connections: must be at least 1")
        if self.poll_interval_s < 0 or self.poll_for_s < 0:
            raise ValueError("poll_interval_s and poll_for_s: must not be negative")

    def http_client(self, origin: str) -> HttpClient:
        return HttpClient(
            origin,
            max_connections=self.max_connections,
            connect_timeout=self.connect_timeout_s,
            timeout=self.timeout_s,
        )

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--timeout-s", type=float, default=10.0, help="answer deadline")
        parser.add_argument("--connect-timeout-s", type=float, default=2.0)
        parser.add_argument("--max-connections", type=int, default=32, help="kept-alive pool")
        parser.add_argument(
            "--poll-interval-s",
            type=float,
            default=3.0,
            help="query unknown outcomes this often (0: never)",
        )
        parser.add_argument("--poll-for-s", type=float, default=60.0, help="and for this long")
        parser.add_argument(
            "--state-dir",
            type=Path,
            default=None,
            help="keep operations sent and not answered yet in a file here, so that a restart "
            "remembers them (default: memory only, forgotten on restart)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Tuning:
        return cls(
            timeout_s=args.timeout_s,
            connect_timeout_s=args.connect_timeout_s,
            max_connections=args.max_connections,
            poll_interval_s=args.poll_interval_s,
            poll_for_s=args.poll_for_s,
            state_dir=args.state_dir,
        )


class WalletAdapter(abc.ABC):
    """A ChannelAdapter for a wallet paid by the buyer's payment code, in CNY, sale only."""

    NAME: str
    METHOD: PaymentMethodType
    LABEL: str

    def __init__(self, tuning: Tuning) -> None:
        self._tuning = tuning
        self._memo = OperationMemo()
        self._watcher: PendingWatcher | None = None
        self._journal: OpenLog | None = None

    def capabilities(self) -> Capabilities:
        return Capabilities(
            name=self.NAME,
            payment_methods=frozenset({self.METHOD}),
            currencies=frozenset({CNY}),
            min_amount_minor=1,
            max_amount_minor=MAX_AMOUNT_FEN,
            supports_manual_capture=False,
            supports_partial_capture=False,
            supports_void=True,
            supports_refund=True,
            supports_partial_refund=True,
        )

    async def start(self, events: EventSink) -> None:
        self._restore()
        await self._open(events)
        self._watcher = PendingWatcher(
            memo=self._memo,
            resolve=self._resolve_asked,
            events=events,
            interval=self._tuning.poll_interval_s,
            give_up_after=self._tuning.poll_for_s,
        )
        self._watcher.start()

    async def stop(self) -> None:
        if self._watcher is not None:
            await self._watcher.stop()
        await self._close()
        if self._journal is not None:
            self._journal.close()

    def _restore(self) -> None:
        """Open the journal of open operations and take back what it kept (OpenLogError, a
        ValueError naming the file, when it cannot be used)."""
        state_dir = self._tuning.state_dir
        if state_dir is None:
            log.warning(
                "no --state-dir: operations sent and not answered are kept in memory only; "
                "after a restart the platform's 'no such trade' is trusted at once"
            )
            return
        journal = OpenLog(
            state_dir / f"{self.NAME}-open-operations.jsonl", keep_for_s=self._tuning.poll_for_s
        )
        restored = journal.open(self._memo.open_operations)
        self._memo.restore(restored, journal)
        self._journal = journal
        log.info("%d open operations restored from %s", len(restored), journal.path)

    async def authorize(self, request: AuthorizeRequest) -> OperationResult:
        method = request.payment_method
        if not isinstance(method, Wallet) or method.type is not self.METHOD:
            raise InvalidRequestError(
                [("payment_method", f"the {self.LABEL} channel takes {self.LABEL} codes")]
            )
        if not request.capture:
            raise NotSupportedError(
                f"{self.LABEL} has no separate capture: authorize with capture=true"
            )
        check_amount(request.amount, self.LABEL)
        ref, amount = request.reference, request.amount
        asked = OpenOperation(ref, OperationType.AUTHORIZE, ref, 0.0, amount)
        return await self._memo.once(
            ref,
            OperationType.AUTHORIZE,
            ref,
            amount=amount,
            send=lambda: self._held_to(amount, ref, self._pay(request, method.auth_code)),
            # A repeat of a payment whose answer never came: ask, do not pay again.
            repeat=lambda: self._resolve_asked(asked),
        )

    async def capture(self, request: CaptureRequest) -> OperationResult:
        raise NotSupportedError(f"{self.LABEL} payments are captured when authorized")

    async def void(self, request: VoidRequest) -> OperationResult:
        original = request.original_reference
        # Both wallets' cancels may be repeated safely: a cancelled trade stays cancelled.
        return await self._memo.once(
            request.reference, OperationType.VOID, original, send=lambda: self._void(original)
        )

    async def refund(self, request: RefundRequest) -> OperationResult:
        check_amount(request.amount, self.LABEL)
        # A repeat with the same refund number refunds once: both platforms deduplicate it.
        return await self._memo.once(
            request.reference,
            OperationType.REFUND,
            request.original_reference,
            amount=request.amount,
            send=lambda: self._held_to(request.amount, request.reference, self._refund(request)),
        )

    async def inquire(self, request: InquireRequest) -> OperationResult:
        # An operation sent and not answered is trusted to be unknown upstream only once it is
        # older than the polling window (wallet guidance: poll an unknown payment about a minute).
        return await self._memo.inquire(
            request, self._resolve_asked, unsure_for_s=self._tuning.poll_for_s, platform=self.LABEL
        )

    async def _resolve_asked(self, op: OpenOperation) -> OperationResult:
        """What the platform says of `op`, held to the amount asked when that is known."""
        return await self._held_to(op.amount, op.reference, self._resolve(op))

    async def _answered_made(self, reference: str) -> None:
        """The platform answered the operation under `reference` as made, which its query does
        not confirm yet: keep it open, and never NOT_FOUND, until a final result settles it."""
        await self._memo.note_answered_made(reference)

    @staticmethod
    async def _held_to(
        asked: Money | None, reference: str, answer: Awaitable[OperationResult]
    ) -> OperationResult:
        return held_to_asked(await answer, asked, reference)

    @abc.abstractmethod
    async def _open(self, events: EventSink) -> None:
        """Open the transport (and any listener)."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Close what `_open` opened."""

    @abc.abstractmethod
    async def _pay(self, request: AuthorizeRequest, auth_code: str) -> OperationResult:
        """Pay with the buyer's code; settle an unknown answer by query where one helps."""

    @abc.abstractmethod
    async def _void(self, original_reference: str) -> OperationResult:
        """Cancel the payment: close it if unpaid, refund it in full if paid."""

    @abc.abstractmethod
    async def _refund(self, request: RefundRequest) -> OperationResult:
        """Refund part or all of the payment."""

    @abc.abstractmethod
    async def _resolve(self, op: OpenOperation) -> OperationResult:
        """Ask the platform what became of an operation."""


def check_amount(amount: Money, label: str) -> None:
    """Refuse an amount the wallets cannot take: CNY only, 1 fen to 100 000 000 yuan."""
    if amount.currency != CNY:
        raise InvalidRequestError([("amount.currency", f"{label} accepts CNY only")])
    if not 0 < amount.amount_minor <= MAX_AMOUNT_FEN:
        raise InvalidRequestError([("amount.amount_minor", f"must be 1 to {MAX_AMOUNT_FEN} fen")])


def held_to_asked(result: OperationResult, asked: Money | None, reference: str) -> OperationResult:
    """`result`, unless it approves an amount (or currency) other than `asked`.

    A success for an amount that was not asked is neither the success asked for nor a decline
    (money moved). It is answered PENDING with raw code AMOUNT_MISMATCH and both amounts in the
    message, and logged as an error: the switch keeps the payment or refund pending, never
    recording it done for the asked amount or failed, until it is reconciled by hand.
    """
    got = result.approved_amount
    if result.status is not OperationStatus.APPROVED or asked is None or got is None:
        return result
    if got == asked:
        return result
    log.error(
        "the platform reports another amount than asked: held for reconciliation",
        extra={
            "reference": reference,
            "asked": f"{asked.amount_minor} {asked.currency}",
            "reported": f"{got.amount_minor} {got.currency}",
        },
    )
    return OperationResult.pending(
        f"amount mismatch: the platform reports {got.amount_minor} {got.currency}, "
        f"{asked.amount_minor} {asked.currency} was asked; held for reconciliation",
        raw_code=AMOUNT_MISMATCH,
        upstream_reference=result.upstream_reference,
    )
