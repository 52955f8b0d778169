"""The Redis store: key layout, the registered Lua scripts, and reads of payment records.

Keys of one merchant share the hash tag `{m:<id>}`, so every script that touches only one
merchant's keys is valid on Redis Cluster. Channel rate-limit keys (`ps:{ch:<name>}:rl`) are
global per channel; the claim scripts touch them beside the merchant's keys, which a single
Redis (or a cluster where channel limits are disabled) allows. The hot path's scripts run
batched (switch/pipelined.py), grouped by the hash tag of their first key, so a batch of
complete.lua calls stays within one merchant's slot too.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import re
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis
import redis.exceptions

from switch.errors import StoreUnavailable
from switch.model import Payment, Risk, RiskDecision, fast_frozen, from_hash, to_fields
from switch.pipelined import PipelinedRedis, ReplyError

T = TypeVar("T")


def _script(name: str) -> str:
    return importlib.resources.files("switch.scripts").joinpath(name).read_text()


@dataclass(frozen=True, slots=True)
class Limit:
    """A GCRA limit in the scripts' units: emission interval and burst tolerance, microseconds."""

    interval_us: int
    tau_us: int

    @classmethod
    def per_second(cls, rate: int, burst: int) -> Limit:
        if rate <= 0:
            return cls(0, 0)
        interval = max(1, 1_000_000 // rate)
        return cls(interval, interval * max(1, burst))


NO_LIMIT = Limit(0, 0)


@dataclass(frozen=True, slots=True)
class Claimed:
    """The answer of a claim script: `kind` is new, replay, in_progress, reused, limited, ..."""

    kind: str
    index: int = 0
    response: bytes = b""
    payment: Payment | None = None
    amount: int = 0
    detail: str = ""
    channel: str = ""
    retry_after_ms: int = 0
    risk: Risk | None = None


fast_frozen(Claimed)  # one per request: built the way Payment is (see switch/model.py)


class Store:
    """All Redis I/O of the switch. Every method raises StoreUnavailable when Redis is down."""

    def __init__(
        self,
        *,
        client: aioredis.Redis,
        fast: PipelinedRedis,
        idempotency_ttl_s: int,
        payment_ttl_s: int,
        journal_max_len: int,
        in_flight_grace_ms: int,
        timeout_s: float = 1.0,
    ) -> None:
        self._r = client
        self._timeout_s = timeout_s
        # As text: the scripts hand them to redis.call, where a Lua number costs an snprintf.
        self._idem_ttl = f"{idempotency_ttl_s}"
        self._pay_ttl = f"{payment_ttl_s}"
        self._journal_max = f"{journal_max_len}"
        self._grace_ms = in_flight_grace_ms
        self._fast = fast
        # The hot path's scripts run batched: the calls of one loop turn in one EVALSHA.
        self._claim_authorize = fast.register(_script("claim_authorize.lua"), batched=True)
        self._claim_followup = fast.register(_script("claim_followup.lua"), batched=True)
        self._complete = fast.register(_script("complete.lua"), batched=True)
        self._release = fast.register(_script("release.lua"))
        self._lease = fast.register(_script("lease.lua"))
        self._review_decide = fast.register(_script("review_decide.lua"))
        # Keys that depend only on a merchant or a channel (both from the config), made once.
        self._merchant_keys: dict[str, tuple[str, str, str, str]] = {}
        self._channel_keys: dict[str, str] = {}

    @property
    def client(self) -> aioredis.Redis:
        return self._r

    @property
    def in_flight_grace_ms(self) -> int:
        """How long an operation in flight stays out of the reconciler's reach."""
        return self._grace_ms

    # --- keys -----------------------------------------------------------------------------

    @staticmethod
    def idem_key(merchant: str, key: str) -> str:
        return f"ps:{{m:{merchant}}}:idem:{key}"

    @staticmethod
    def payment_key(merchant: str, payment_id: str) -> str:
        return f"ps:{{m:{merchant}}}:pay:{payment_id}"

    @staticmethod
    def journal_key(merchant: str) -> str:
        return f"ps:{{m:{merchant}}}:journal"

    @staticmethod
    def pending_key(merchant: str) -> str:
        return f"ps:{{m:{merchant}}}:pending"

    @staticmethod
    def review_key(merchant: str) -> str:
        """The payments held for risk review, scored by the time they were held."""
        return f"ps:{{m:{merchant}}}:review"

    @staticmethod
    def merchant_limit_key(merchant: str) -> str:
        return f"ps:{{m:{merchant}}}:rl"

    @staticmethod
    def channel_limit_key(channel: str) -> str:
        return f"ps:{{ch:{channel}}}:rl"

    # --- scripts --------------------------------------------------------------------------

    async def claim_authorize(
        self,
        *,
        merchant: str,
        idempotency_key: str,
        fingerprint: str,
        payment: Payment,
        merchant_limit: Limit,
        candidates: Sequence[tuple[str, Limit]],
        risk_spec: str = "",
        risk_keys: Sequence[str] = (),
    ) -> Claimed:
        pending, limit_key, review, _ = self._merchant_keys.get(merchant) or self._keys_of(merchant)
        keys = [
            self.idem_key(merchant, idempotency_key),
            self.payment_key(merchant, payment.id),
            pending,
            limit_key,
        ]
        channel_keys = self._channel_keys
        for name, _ in candidates:
            keys.append(channel_keys.get(name) or self._key_of_channel(name))
        keys.append(review)
        keys += risk_keys
        args: list[Any] = [
            fingerprint,
            self._idem_ttl,
            self._pay_ttl,
            self._grace_ms,
            merchant_limit.interval_us,
            merchant_limit.tau_us,
            payment.id,
            len(candidates),
        ]
        for name, limit in candidates:
            args += [name, limit.interval_us, limit.tau_us]
        args.append(to_fields(payment, claim=True))
        # The spec is JSON already (switch/risk.py): embedded as it is, not as a string.
        args.append(orjson.Fragment(risk_spec) if risk_spec else "")
        out = await self._call(self._claim_authorize, keys, [orjson.dumps(args)])
        if _s(out[0]) == "new":
            risk = Risk(RiskDecision[_s(out[2])], _s(out[3]), int(out[4]))
            return Claimed(kind="new", index=int(out[1]) - 1, risk=risk)
        return _claimed(out)

    async def claim_followup(
        self,
        *,
        merchant: str,
        idempotency_key: str,
        fingerprint: str,
        payment_id: str,
        operation: str,
        amount: int | None,
        currency: str,
        reference: str,
        merchant_limit: Limit,
        channel_limits: Sequence[tuple[str, Limit]],
    ) -> Claimed:
        pending, limit_key, _, _ = self._merchant_keys.get(merchant) or self._keys_of(merchant)
        keys = [
            self.idem_key(merchant, idempotency_key),
            self.payment_key(merchant, payment_id),
            pending,
            limit_key,
        ]
        limited = [(n, lim) for n, lim in channel_limits if lim.interval_us]
        args: list[Any] = [
            fingerprint,
            self._idem_ttl,
            self._grace_ms,
            merchant_limit.interval_us,
            merchant_limit.tau_us,
            len(limited),
            "",
            operation,
            "" if amount is None else amount,
            currency,
            reference,
            payment_id,
        ]
        for name, limit in limited:
            args += [name, limit.interval_us, limit.tau_us]
        out = await self._call(self._claim_followup, keys, [orjson.dumps(args)])
        claimed = _claimed(out)
        if claimed.kind == "new":
            flat = [_s(x) for x in out[2:]]
            record = from_hash(dict(zip(flat[::2], flat[1::2], strict=True)))
            return Claimed(kind="new", amount=int(out[1]), payment=record)
        return claimed

    async def complete(
        self,
        *,
        before: Payment,
        after: Payment,
        idempotency: str,
        idem_key: str = "",
        response: bytes = b"",
        pending_at_ms: int | None = None,
        journal: list[str] | None,
    ) -> bool:
        """Write an outcome; False when another resolver changed the payment first. `journal`
        None writes no journal entry (a change no consumer needs to see)."""
        merchant = after.merchant_id
        pay_key = self.payment_key(merchant, after.id)
        pending, _, _, journal_key = self._merchant_keys.get(merchant) or self._keys_of(merchant)
        keys = [pay_key, idem_key or pay_key, journal_key, pending]
        args = orjson.dumps(
            [
                str(before.version),
                idempotency,
                self._pay_ttl,
                self._journal_max,
                "" if pending_at_ms is None else f"{pending_at_ms}",
                after.id,
                to_fields(after),
                journal or (),
            ]
        )
        out = await self._call(self._complete, keys, [args, response])
        return int(out[0]) == 1

    async def release(
        self, *, merchant: str, idempotency_key: str, payment_id: str, reference: str
    ) -> None:
        keys = [
            self.idem_key(merchant, idempotency_key),
            self.payment_key(merchant, payment_id),
            self.pending_key(merchant),
        ]
        await self._call(self._release, keys, [reference, payment_id])

    async def held_before(self, merchant: str, before_ms: int, batch: int) -> list[str]:
        """Payments of the merchant held for risk review since before `before_ms`."""
        out = await self._guard(
            self._r.zrangebyscore(self.review_key(merchant), "-inf", before_ms, 0, batch)
        )
        return [_s(x) for x in out]

    async def reject_held(self, before: Payment, after: Payment, journal: list[str]) -> bool:
        """Record the rejection of a payment still held for review at `before`'s version (the
        same script as an operator's decision); False when it was decided or changed first."""
        merchant = after.merchant_id
        keys = [
            self.payment_key(merchant, after.id),
            self.review_key(merchant),
            self.pending_key(merchant),
            self.journal_key(merchant),
        ]
        args: list[Any] = [
            str(before.version),
            orjson.dumps(to_fields(after)),
            -1,
            orjson.dumps(journal),
            self._journal_max,
            after.id,
        ]
        return int(await self._call(self._review_decide, keys, args)) == 1

    async def lease_due(self, merchant: str, *, lease_ms: int, batch: int) -> list[str]:
        out = await self._call(self._lease, [self.pending_key(merchant)], [lease_ms, batch])
        return [_s(x) for x in out]

    async def reschedule(self, merchant: str, payment_id: str, at_ms: int) -> None:
        await self._guard(self._r.zadd(self.pending_key(merchant), {payment_id: at_ms}, xx=True))

    async def forget_pending(self, merchant: str, payment_id: str) -> None:
        await self._guard(self._r.zrem(self.pending_key(merchant), payment_id))

    async def pending_count(self, merchants: Iterable[str]) -> int:
        total = 0
        for m in merchants:
            total += int(await self._guard(self._r.zcard(self.pending_key(m))))
        return total

    # --- reads ----------------------------------------------------------------------------

    async def get(self, merchant: str, payment_id: str) -> Payment | None:
        raw = await self._guard(self._r.hgetall(self.payment_key(merchant, payment_id)))
        if not raw:
            return None
        return from_hash({_s(k): _s(v) for k, v in raw.items()})

    async def idempotency_state(self, key: str) -> str:
        state = await self._guard(self._r.hget(key, "state"))
        return _s(state) if state is not None else ""

    # --- plumbing -------------------------------------------------------------------------

    def _keys_of(self, merchant: str) -> tuple[str, str, str, str]:
        """A merchant's pending, rate-limit, review and journal keys (see `claim_authorize`)."""
        keys = (
            self.pending_key(merchant),
            self.merchant_limit_key(merchant),
            self.review_key(merchant),
            self.journal_key(merchant),
        )
        self._merchant_keys[merchant] = keys
        return keys

    def _key_of_channel(self, channel: str) -> str:
        key = self._channel_keys[channel] = self.channel_limit_key(channel)
        return key

    async def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        # No timer of our own here: the pipelined connection times every command it sends
        # (and its connect), so a second timer per call would only cost the hot path.
        try:
            return await self._fast.evalsha(script, keys, args)
        except _DOWN as exc:
            raise StoreUnavailable(_DOWN_MESSAGE) from exc
        except ReplyError as exc:
            text = str(exc)  # a batch's wrapper may quote the reply inside its own
            if "OOM command not allowed" in text:
                raise StoreUnavailable(_FULL_MESSAGE) from exc
            if _NOT_SERVING.search(text):
                raise StoreUnavailable(_DOWN_MESSAGE) from exc
            raise

    async def _guard(self, call: Awaitable[T]) -> T:
        # One timer per command, not redis-py's socket timeout: that one wraps every read in
        # asyncio.wait_for, which costs a task per command on the hot path.
        try:
            async with asyncio.timeout(self._timeout_s):
                return await call
        except _DOWN as exc:
            raise StoreUnavailable(_DOWN_MESSAGE) from exc
        except redis.exceptions.OutOfMemoryError as exc:
            raise StoreUnavailable(_FULL_MESSAGE) from exc
        except redis.exceptions.ResponseError as exc:
            if not_serving(exc):
                raise StoreUnavailable(_DOWN_MESSAGE) from exc
            raise


def not_serving(exc: redis.exceptions.ResponseError) -> bool:
    """Whether redis-py's error reply says Redis is up but not serving (see _NOT_SERVING): an
    outage to wait out, unlike an error that says it is set up wrong (NOPERM, WRONGTYPE)."""
    return isinstance(exc, _NOT_SERVING_ERRORS) or bool(_NOT_SERVING.search(str(exc)))


_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError, TimeoutError)
# A Redis that is up but not serving answers with an error instead: loading its data after a
# restart (LOADING), running a script past busy-reply-threshold (BUSY), a replica cut off from
# its master or read-only (MASTERDOWN, READONLY), a cluster moving or missing slots (TRYAGAIN,
# CLUSTERDOWN), a master that refuses writes while fewer replicas than min-replicas-to-write
# are in reach (NOREPLICAS). For the switch that is Redis down, not a failure of its own.
_NOT_SERVING = re.compile(
    r"\b(?:LOADING|BUSY|MASTERDOWN|READONLY|TRYAGAIN|CLUSTERDOWN|NOREPLICAS)\b"
)
# redis-py turns most of them into classes of their own and drops the code from the message
# (LOADING into BusyLoadingError, a ConnectionError: already in _DOWN); BUSY and NOREPLICAS it
# leaves ResponseErrors with their code.
_NOT_SERVING_ERRORS = (
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,  # and MasterDownError, a kind of it
)
# Said to a caller whose claim failed: the switch forwards nothing without one. (A claim whose
# reply was lost may still have landed; a retry with the same key then learns what became of it.)
_DOWN_MESSAGE = "the payment store (Redis) is unavailable; nothing was sent to any channel"
# Redis at its maxmemory with the noeviction policy refuses writes ("OOM command not allowed").
# Redis decides when a script starts and refuses it at its first command that adds data,
# unless a write already ran in that EVAL: every hot script's first write adds data (nothing is
# half written), but a claim that first drops expired rate-limit fields (HDEL), and every call
# after it in the same batch, is let through: the bound is soft. A refused claim forwards
# nothing; a refused outcome is retried in the background until it lands (as when Redis is down).
_FULL_MESSAGE = (
    "the payment store (Redis) is full (maxmemory reached); nothing was sent to any channel"
)


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _claimed(out: list[Any]) -> Claimed:
    kind = _s(out[0])
    if kind == "new":
        return Claimed(kind=kind, index=int(out[1]) - 1)
    if kind == "replay":
        return Claimed(kind=kind, response=bytes(out[1]))
    if kind == "in_progress":
        return Claimed(kind=kind, detail=_s(out[1]))
    if kind == "limited":
        retry_ms = max(1, (int(out[2]) + 999) // 1000)
        return Claimed(kind=kind, detail=_s(out[1]), retry_after_ms=retry_ms, channel=_s(out[3]))
    if kind in ("currency", "state", "amount"):
        return Claimed(kind=kind, detail=_s(out[1]))
    return Claimed(kind=kind)
