"""AdminService's risk operations: block lists, risk reviews, and config reload requests.

Run by the analytics process (switch/admin.py serves them). Block lists live in Redis and reach
the switches through switch/risksync.py; a review decision is one script (review_decide.lua)
that lets a held payment be approved or rejected exactly once; the approved payment is sent by
whichever switch's reconciler leases it first.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import re
import time
from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
import redis.exceptions

from payswitch.admin.v1 import admin_service_pb2 as pb
from switch import errors
from switch.cards import Fingerprinter, luhn_valid
from switch.model import Operation, Payment, ReviewState, from_hash, to_fields
from switch.records import journal_entry, review_rejected
from switch.risk import FINGERPRINT, parse_bin_range
from switch.risksync import BLOCK_KEYS, BLOCK_VERSION_KEY, BLOCKS_CHANGED, EVENTS_CHANNEL, RELOAD
from switch.server import payment_proto
from switch.store import Store
from switch.validation import MAX_BUYER_ID, printable

KINDS = {
    pb.BLOCK_LIST_KIND_CARD_FINGERPRINT: "card",
    pb.BLOCK_LIST_KIND_BIN_RANGE: "bin",
    pb.BLOCK_LIST_KIND_WALLET_BUYER: "buyer",
}
MAX_NOTE = 256
MAX_PAGE = 1000
_CARD_NUMBER = re.compile(r"^[0-9]{12,19}\Z")
_ID = re.compile(r"^[A-Za-z0-9_]{1,64}\Z")
# Down, or full (at its maxmemory with noeviction every write is refused): UNAVAILABLE either way.
_ERRORS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.OutOfMemoryError,
    OSError,
)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class RiskDesk:
    """The risk RPCs' work, on plain arguments; raises SwitchError subclasses for the servicer
    to turn into statuses."""

    def __init__(
        self,
        *,
        client: aioredis.Redis,
        fingerprints: Fingerprinter,
        merchants: Sequence[str],
        journal_max_len: int,
    ) -> None:
        self._r = client
        self._fp = fingerprints
        self._merchants = list(merchants)
        self._journal_max = journal_max_len
        text = importlib.resources.files("switch.scripts").joinpath("review_decide.lua")
        self._decide = client.register_script(text.read_text())

    # --- block lists --------------------------------------------------------------------

    def _kind(self, kind: int) -> str:
        name = KINDS.get(kind)  # type: ignore[call-overload]
        if name is None:
            raise errors.InvalidRequest([("kind", "must be a block list kind (not UNSPECIFIED)")])
        return str(name)

    async def list_blocks(self, kind: int) -> pb.ListBlockListEntriesResponse:
        name = self._kind(kind)
        raw = await self._guard(self._r.hgetall(BLOCK_KEYS[name]))
        out = pb.ListBlockListEntriesResponse()
        for value, meta in sorted(raw.items()):
            out.entries.append(_entry(kind, value, meta))
        return out

    def entry_value(self, r: pb.AddBlockListEntryRequest) -> str:
        """The value to store: a fingerprint or a canonical BIN range, never a card number."""
        name = self._kind(r.kind)
        sources = ("value", "card_number", "wallet_auth_code", "wallet_buyer_id")
        given = [f for f in sources if getattr(r, f)]
        problems: list[tuple[str, str]] = []
        if len(given) != 1:
            problems.append(("value", "set exactly one of " + ", ".join(sources)))
        elif r.card_number and name != "card":
            problems.append(("card_number", "only for the CARD_FINGERPRINT list"))
        elif (r.wallet_auth_code or r.wallet_buyer_id) and name != "buyer":
            problems.append((given[0], "only for the WALLET_BUYER list"))
        if len(r.note) > MAX_NOTE:
            problems.append(("note", f"at most {MAX_NOTE} characters"))
        if problems:
            raise errors.InvalidRequest(problems)
        if r.card_number:
            if not _CARD_NUMBER.match(r.card_number) or not luhn_valid(r.card_number):
                raise errors.InvalidRequest(
                    [("card_number", "must be 12 to 19 digits passing the Luhn check")]
                )
            return self._fp.instrument(r.card_number)
        if r.wallet_auth_code:
            if len(r.wallet_auth_code) > 128:
                raise errors.InvalidRequest([("wallet_auth_code", "at most 128 characters")])
            return self._fp.instrument(r.wallet_auth_code)
        if r.wallet_buyer_id:
            buyer = r.wallet_buyer_id
            if len(buyer) > MAX_BUYER_ID or not printable(buyer):
                raise errors.InvalidRequest(
                    [("wallet_buyer_id", f"must be 1 to {MAX_BUYER_ID} printable ASCII characters")]
                )
            return self._fp.wallet_buyer(auth_code="", buyer_id=buyer)
        return _canonical(name, r.value)

    async def add_block(self, r: pb.AddBlockListEntryRequest) -> pb.AddBlockListEntryResponse:
        value = self.entry_value(r)
        meta = json.dumps({"note": r.note, "t": _now_ms()})
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(BLOCK_KEYS[KINDS[r.kind]], value, meta)
        pipe.incr(BLOCK_VERSION_KEY)
        pipe.publish(EVENTS_CHANNEL, BLOCKS_CHANGED)
        added, _, _ = await self._guard(pipe.execute())
        return pb.AddBlockListEntryResponse(entry=_entry(r.kind, value, meta), added=bool(added))

    async def remove_block(
        self, r: pb.RemoveBlockListEntryRequest
    ) -> pb.RemoveBlockListEntryResponse:
        name = self._kind(r.kind)
        value = _canonical(name, r.value)
        pipe = self._r.pipeline(transaction=True)
        pipe.hdel(BLOCK_KEYS[name], value)
        pipe.incr(BLOCK_VERSION_KEY)
        pipe.publish(EVENTS_CHANNEL, BLOCKS_CHANGED)
        removed, _, _ = await self._guard(pipe.execute())
        return pb.RemoveBlockListEntryResponse(removed=bool(removed))

    # --- reviews ------------------------------------------------------------------------

    async def list_reviews(self, merchant: str, page_size: int) -> pb.ListRiskReviewsResponse:
        problems = self._merchant_problems(merchant, required=False)
        if not 0 <= page_size <= MAX_PAGE:
            problems.append(("page_size", f"must be from 0 to {MAX_PAGE}"))
        if problems:
            raise errors.InvalidRequest(problems)
        out = pb.ListRiskReviewsResponse()
        for m in [merchant] if merchant else self._merchants:
            ids = await self._guard(self._r.zrange(Store.review_key(m), 0, (page_size or 100) - 1))
            pipe = self._r.pipeline(transaction=False)
            for pid in ids:
                pipe.hgetall(Store.payment_key(m, pid))
            for raw in await self._guard(pipe.execute()):
                if raw:
                    out.payments.append(
                        pb.HeldPayment(merchant_id=m, payment=payment_proto(from_hash(raw)))
                    )
        return out

    async def approve(self, merchant: str, payment_id: str) -> pb.ApproveRiskReviewResponse:
        p, changed = await self._decide_once(merchant, payment_id, ReviewState.APPROVED)
        return pb.ApproveRiskReviewResponse(payment=payment_proto(p), changed=changed)

    async def reject(self, merchant: str, payment_id: str) -> pb.RejectRiskReviewResponse:
        p, changed = await self._decide_once(merchant, payment_id, ReviewState.REJECTED)
        return pb.RejectRiskReviewResponse(payment=payment_proto(p), changed=changed)

    async def _decide_once(
        self, merchant: str, payment_id: str, verdict: ReviewState
    ) -> tuple[Payment, bool]:
        problems = self._merchant_problems(merchant, required=True)
        if not _ID.match(payment_id):
            problems.append(("payment_id", "required: a payment id such as pay_..."))
        if problems:
            raise errors.InvalidRequest(problems)
        key = Store.payment_key(merchant, payment_id)
        for _ in range(5):  # another decision or write may land between our read and ours
            raw = await self._guard(self._r.hgetall(key))
            if not raw:
                raise errors.PaymentNotFound(f"no payment {payment_id} of merchant {merchant}")
            p = from_hash(raw)
            state = p.risk.review if p.risk else None
            if state is verdict or (
                verdict is ReviewState.APPROVED and state is ReviewState.FORWARDED
            ):
                return p, False
            if state is not ReviewState.HELD:
                now = state.name.lower() if state else "not held for review"
                raise errors.InvalidPaymentState(
                    f"payment {payment_id} cannot be {verdict.name.lower()}: it is {now} "
                    f"({p.status.name})",
                    subject=f"payments/{payment_id}",
                )
            after, pending_at, journal = self._decided(p, verdict)
            keys = [key, Store.review_key(merchant), Store.pending_key(merchant)]
            keys.append(Store.journal_key(merchant))
            args: list[Any] = [str(p.version), orjson.dumps(to_fields(after)), pending_at, journal]
            args += [self._journal_max, p.id]
            if int(await self._guard(self._decide(keys=keys, args=args))):
                return after, True
        raise errors.PaymentBusy(f"payment {payment_id} keeps changing; retry")

    @staticmethod
    def _decided(p: Payment, verdict: ReviewState) -> tuple[Payment, int, bytes]:
        """The payment after the decision, when it is due for sending (-1: never), and the
        journal entry (JSON, '' for none: an approval is journaled with the send's outcome)."""
        assert p.risk is not None
        risk = dataclasses.replace(p.risk, review=verdict)
        t = _now_ms()
        if verdict is ReviewState.APPROVED:
            after = p.evolve(
                risk=risk,
                version=p.version + 1,
                update_ms=t,
                status_message="approved after risk review; a switch is sending it",
            )
            return after, 0, b""
        after = review_rejected(p, why="rejected after risk review", t=t)
        return after, -1, orjson.dumps(journal_entry(after, Operation.AUTHORIZE))

    def _merchant_problems(self, merchant: str, *, required: bool) -> list[tuple[str, str]]:
        if merchant and merchant not in self._merchants:
            return [("merchant_id", f"no merchant {merchant[:32]!r} is configured")]
        if required and not merchant:
            return [("merchant_id", "required")]
        return []

    # --- reload -------------------------------------------------------------------------

    async def reload(self) -> pb.ReloadConfigResponse:
        listeners = await self._guard(self._r.publish(EVENTS_CHANNEL, RELOAD))
        return pb.ReloadConfigResponse(switches_notified=int(listeners))

    async def _guard(self, call: Any) -> Any:
        try:
            return await call
        except _ERRORS as exc:
            raise errors.StoreUnavailable("Redis is unavailable; nothing was changed") from exc


def _canonical(name: str, value: str) -> str:
    if name == "bin":
        try:
            lo, hi = parse_bin_range(value)
        except ValueError as exc:
            raise errors.InvalidRequest([("value", str(exc))]) from exc
        return lo if lo == hi else f"{lo}-{hi}"
    if not FINGERPRINT.match(value):
        raise errors.InvalidRequest(
            [("value", "must be a fingerprint: 64 lower-case hex digits, as payments show it")]
        )
    return value


def _entry(kind: int, value: str, meta: str) -> pb.BlockListEntry:
    try:
        info = json.loads(meta)
        note, t = str(info.get("note", "")), int(info.get("t", 0))
    except (ValueError, AttributeError):
        note, t = "", 0
    entry = pb.BlockListEntry(kind=kind, value=value, note=note)  # type: ignore[arg-type]
    entry.create_time.FromMilliseconds(t)
    return entry
