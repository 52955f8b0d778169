"""What the payment flows write besides the payment itself: ids, channel references, journal
entries, the summary kept of an instrument, and the records of payments risk control stopped."""

from __future__ import annotations

import dataclasses
import os
import random
import secrets
import time

from payswitch.channel.v1 import channel_service_pb2 as ch
from payswitch.common.v1 import decline_code_pb2, payment_method_pb2
from switch import lifecycle
from switch.cards import Fingerprinter
from switch.model import (
    METHOD_ALIPAY,
    METHOD_CARD,
    METHOD_WECHAT_PAY,
    OP_AUTHORIZE,
    OUTCOME_DECLINED,
    REVIEW_REJECTED,
    STATUS_DECLINED,
    ChannelResult,
    Decline,
    MethodSummary,
    Operation,
    Payment,
)

# Payment ids must be unique, not secret (every read is checked against the caller's merchant),
# so they come from a generator seeded once from the OS rather than a system call per payment.
_ids = random.Random(os.urandom(32))


# Base32 (RFC 4648) in lower case, every 10-bit value as its two characters: 120 random bits are
# 12 lookups, where base64.b32encode (pure Python in 3.11) goes through bytes and back.
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
_BASE32_PAIRS = [a + b for a in _BASE32 for b in _BASE32]
_PAIR_SHIFTS = range(110, -1, -10)


def new_payment_id() -> str:
    """pay_ and 120 random bits in lower-case base32: 24 characters, no padding."""
    bits = _ids.getrandbits(120)
    return "pay_" + "".join([_BASE32_PAIRS[bits >> shift & 0x3FF] for shift in _PAIR_SHIFTS])


def reference(merchant: str, payment_id: str, op: Operation) -> str:
    """The channel reference of an operation: merchant and payment recoverable from it."""
    if op is OP_AUTHORIZE:
        return f"{merchant}-{payment_id}"
    return f"{merchant}-{payment_id}-{op.name[0].lower()}{secrets.token_hex(4)}"


def authorize_reference(p: Payment) -> str:
    """The reference the payment's authorization went under (a cascade gives it a new one)."""
    for e in reversed(p.events):
        if e.operation is OP_AUTHORIZE:
            return e.reference
    return reference(p.merchant_id, p.id, OP_AUTHORIZE)


def with_reference(request: ch.AuthorizeRequest, ref: str) -> ch.AuthorizeRequest:
    again = ch.AuthorizeRequest()
    again.CopyFrom(request)
    again.reference = ref
    return again


def parse_reference(ref: str) -> tuple[str, str] | None:
    parts = ref.split("-")
    if len(parts) < 2 or not parts[1].startswith("pay_"):
        return None
    return parts[0], parts[1]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def journal_entry(p: Payment, op: Operation, latency_us: int | None = None) -> list[str]:
    """What downstream consumers of the payments journal see of a change: no instrument data.
    Flat, name, value, name, value..., as XADD takes it (see switch.model.to_fields)."""
    # fmt: off
    entry = [
        "pid", p.id,
        "mid", p.merchant_id,
        "op", op._name_,
        "status", p.status._name_,
        "amount", f"{p.amount}",
        "cur", p.currency,
        "authorized", f"{p.authorized}",
        "captured", f"{p.captured}",
        "refunded", f"{p.refunded}",
        "channel", p.channel,
        "method", p.method.type._name_,
        "ver", f"{p.version}",
        "t", f"{p.update_ms}",
    ]
    # fmt: on
    if p.decline is not None and p.status is STATUS_DECLINED:
        entry += ("decline", f"{p.decline.code}")
    if latency_us is not None:
        entry += ("lat_us", f"{latency_us}")  # the channel call's time, for per-channel latency
    risk = p.risk
    if risk is not None:  # the risk decision, never the data it was made on
        entry += ("risk", risk.decision._name_)
        if risk.rule:
            entry += ("rule", risk.rule)
        if risk.score_milli:
            entry += ("score", f"{risk.score_milli}")
        if risk.review is not None:
            entry += ("review", risk.review._name_)
    return entry


def review_rejected(p: Payment, *, why: str, t: int) -> Payment:
    """A payment held for risk review, rejected (by an operator, or because nobody decided in
    time): DECLINED RISK_REJECTED under the rule that held it, its sealed instrument dropped."""
    assert p.risk is not None
    risk = dataclasses.replace(p.risk, review=REVIEW_REJECTED)
    message = f"{why} (held by the rule {p.risk.rule})"
    return risk_declined(p, rule=p.risk.rule, message=message, t=t).evolve(risk=risk, channel="")


def without_cvc(method: payment_method_pb2.PaymentMethod) -> bytes:
    """The instrument as a held payment keeps it: a CVC is never stored, not even sealed, so an
    approved payment reaches its channel without one."""
    if method.WhichOneof("method") != "card":
        return bytes(method.SerializeToString())
    kept = payment_method_pb2.PaymentMethod()
    kept.CopyFrom(method)
    kept.card.cvc = ""
    return bytes(kept.SerializeToString())


def held_binding(p: Payment) -> str:
    """What a held payment's sealed instrument is bound to (switch/cards.py Vault)."""
    return f"{p.merchant_id}/{p.id}"


def risk_declined(p: Payment, *, rule: str, message: str, t: int) -> Payment:
    """A payment the risk rules (or a reviewer) rejected: DECLINED RISK_REJECTED, never sent.
    The decline's raw code is the rule's name."""
    decline = Decline(
        code=decline_code_pb2.DECLINE_CODE_RISK_REJECTED, raw_code=rule, message=message
    )
    return lifecycle.settle(
        p,
        op=OP_AUTHORIZE,
        reference=p.pending_ref or reference(p.merchant_id, p.id, OP_AUTHORIZE),
        amount=p.amount,
        result=ChannelResult(outcome=OUTCOME_DECLINED, decline=decline, message=message),
        now_ms=t,
    ).evolve(status_message=message, vault="")


def summarize(pm: payment_method_pb2.PaymentMethod, fingerprints: Fingerprinter) -> MethodSummary:
    """What is kept of an instrument: BIN, last four, expiry and a keyed fingerprint."""
    which = pm.WhichOneof("method")
    if which == "card":
        c = pm.card
        number = c.number  # each read of a protobuf field makes a new string: read once
        return MethodSummary(
            type=METHOD_CARD,
            card_bin=number[:6],
            card_last4=number[-4:],
            expiry_month=c.expiry_month,
            expiry_year=c.expiry_year,
            fingerprint=fingerprints.instrument(number),
        )
    wallet = pm.alipay if which == "alipay" else pm.wechat_pay
    return MethodSummary(
        type=METHOD_ALIPAY if which == "alipay" else METHOD_WECHAT_PAY,
        fingerprint=fingerprints.wallet_buyer(auth_code=wallet.auth_code, buyer_id=wallet.buyer_id),
    )
