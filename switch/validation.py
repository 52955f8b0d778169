"""Checks every Gateway request before anything is stored or forwarded, naming each bad field."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from payswitch.common.v1 import money_pb2, payment_method_pb2
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from payswitch.gateway.v1 import payment_pb2
from switch.cards import luhn_valid
from switch.currency import exponent
from switch.errors import InvalidRequest

MAX_AMOUNT_MINOR = 100_000_000_000
MAX_BUYER_ID = 64
_PAYMENT_ID = re.compile(r"pay_[a-z0-9]{20,40}")  # with fullmatch: a trailing newline fails
# What "control characters" means below: Unicode's Cc, C0 and DEL and the C1 range (NEL...).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

Violations = list[tuple[str, str]]
M = TypeVar("M", bound=Message)
Clock = Callable[[], dt.date]


# The UTC date, made again only when the day changes: a datetime per request was 3,700
# instructions of every authorization.
_day: tuple[int, dt.date] = (-1, dt.date.min)


def _today() -> dt.date:
    global _day
    now = time.time()
    if int(now // 86400) != _day[0]:
        _day = (int(now // 86400), dt.datetime.fromtimestamp(now, dt.UTC).date())
    return _day[1]


def parse(kind: type[M], data: bytes) -> M:
    """A request from the bytes the caller sent. Bytes that are no such message are a malformed
    request (INVALID_ARGUMENT naming `request`), where gRPC's own deserializer answers UNKNOWN and,
    on a stream, ends it with OK and drops what follows: the servers register no deserializer
    and call this instead."""
    try:
        return kind.FromString(data)
    except DecodeError:
        name = kind.DESCRIPTOR.full_name
        raise InvalidRequest(
            [("request", f"is not a {name}: protobuf cannot parse these bytes")]
        ) from None


def bearer_token(value: str | bytes) -> str:
    """The key in an `authorization: Bearer <key>` value (RFC 6750; the scheme's name is
    case-insensitive, RFC 7235 2.1), or empty, which no caller is: a bare key, or one under
    another scheme, is refused rather than taken as the key."""
    if isinstance(value, str) and value[:7].lower() == "bearer ":
        return value[7:].strip()
    return ""


def printable(s: str) -> bool:
    """Printable ASCII only (space to tilde)."""
    return s.isascii() and s.isprintable()


def digits(s: str) -> bool:
    """One or more ASCII digits and nothing else. Not `re.match("^[0-9]+$")`: its `$` also
    matches before a trailing newline, which let a CVC "123\\n" through."""
    return s.isascii() and s.isdigit()


def _text(v: Violations, name: str, value: str, limit: int, *, ascii_only: bool = False) -> None:
    if len(value) > limit:
        v.append((name, f"must be at most {limit} characters, got {len(value)}"))
    elif printable(value):
        return  # the common case, and it has no control characters
    elif ascii_only:
        v.append((name, "must be printable ASCII characters"))
    elif _CONTROL.search(value):
        v.append((name, "must not contain control characters"))


def _idempotency_key(v: Violations, key: str) -> None:
    if not key:
        v.append(("idempotency_key", "is required: 1 to 255 printable ASCII characters"))
    elif len(key) > 255:
        v.append(("idempotency_key", f"must be at most 255 characters, got {len(key)}"))
    elif not printable(key):
        v.append(("idempotency_key", "must be printable ASCII characters (0x20-0x7E)"))


def _money(v: Violations, name: str, m: money_pb2.Money, max_minor: int) -> None:
    # Each read of a protobuf field makes a new Python object: read once.
    amount, currency = m.amount_minor, m.currency
    if amount <= 0:
        v.append((f"{name}.amount_minor", f"must be positive, got {amount}"))
    elif amount > max_minor:
        v.append((f"{name}.amount_minor", f"must be at most {max_minor}, got {amount}"))
    if not currency:
        v.append((f"{name}.currency", "is required: an ISO 4217 code such as USD"))
    elif exponent(currency) is None:
        v.append((f"{name}.currency", f"is not a known ISO 4217 currency code: {currency[:8]!r}"))


def _payment_id(v: Violations, pid: str) -> None:
    if not pid:
        v.append(("payment_id", "is required"))
    elif not _PAYMENT_ID.fullmatch(pid):
        v.append(
            (
                "payment_id",
                "is not a payment id (pay_ followed by 20-40 lower-case letters or digits)",
            )
        )


def _card(v: Violations, c: payment_method_pb2.Card, today: dt.date) -> None:
    p = "payment_method.card"
    number, month, year, cvc = c.number, c.expiry_month, c.expiry_year, c.cvc
    if not number:
        v.append((f"{p}.number", "is required"))
    elif not digits(number) or not 12 <= len(number) <= 19:
        v.append((f"{p}.number", "must be 12 to 19 digits"))
    elif not luhn_valid(number):
        v.append((f"{p}.number", "fails the Luhn check"))
    month_ok = 1 <= month <= 12
    if not month_ok:
        v.append((f"{p}.expiry_month", f"must be from 1 to 12, got {month}"))
    if not 1000 <= year <= 9999:
        v.append((f"{p}.expiry_year", f"must be a four-digit year, got {year}"))
    elif month_ok and (year, month) < (today.year, today.month):
        v.append((f"{p}.expiry_year", "the card has expired"))
    elif year > today.year + 50:
        v.append((f"{p}.expiry_year", f"must be at most {today.year + 50}"))
    if not cvc:
        v.append((f"{p}.cvc", "is required: 3 or 4 digits"))
    elif not digits(cvc) or not 3 <= len(cvc) <= 4:
        v.append((f"{p}.cvc", "must be 3 or 4 digits"))
    _text(v, "payment_method.card.holder_name", c.holder_name, 64)


def _wallet_code(v: Violations, name: str, code: str) -> None:
    if not code:
        v.append((name, "is required: the buyer's payment code"))
    elif not digits(code) or not 16 <= len(code) <= 24:
        v.append((name, "must be 16 to 24 digits"))


def _payment_method(v: Violations, pm: payment_method_pb2.PaymentMethod, today: dt.date) -> None:
    which = pm.WhichOneof("method")
    if which is None:
        v.append(("payment_method", "is required: one of card, alipay, wechat_pay"))
    elif which == "card":
        _card(v, pm.card, today)
    else:
        wallet = pm.alipay if which == "alipay" else pm.wechat_pay
        _wallet_code(v, f"payment_method.{which}.auth_code", wallet.auth_code)
        buyer = wallet.buyer_id
        if buyer and (len(buyer) > MAX_BUYER_ID or not printable(buyer)):
            v.append(
                (
                    f"payment_method.{which}.buyer_id",
                    f"must be 1 to {MAX_BUYER_ID} printable ASCII characters when set",
                )
            )


def authorize(req: gw.AuthorizeRequest, *, max_amount_minor: int, today: Clock = _today) -> None:
    v: Violations = []
    _idempotency_key(v, req.idempotency_key)
    if not req.HasField("amount"):
        v.append(("amount", "is required"))
    else:
        _money(v, "amount", req.amount, max_amount_minor)
    if not req.HasField("payment_method"):
        v.append(("payment_method", "is required: one of card, alipay, wechat_pay"))
    else:
        _payment_method(v, req.payment_method, today())
    if req.capture_mode not in (
        payment_pb2.CAPTURE_MODE_AUTOMATIC,
        payment_pb2.CAPTURE_MODE_MANUAL,
    ):
        v.append(("capture_mode", "must be CAPTURE_MODE_AUTOMATIC or CAPTURE_MODE_MANUAL"))
    _text(v, "merchant_reference", req.merchant_reference, 64, ascii_only=True)
    _text(v, "description", req.description, 128)
    if v:
        raise InvalidRequest(v)


def capture(req: gw.CaptureRequest, *, max_amount_minor: int) -> None:
    v: Violations = []
    _idempotency_key(v, req.idempotency_key)
    _payment_id(v, req.payment_id)
    if req.HasField("amount"):
        _money(v, "amount", req.amount, max_amount_minor)
    if v:
        raise InvalidRequest(v)


def void(req: gw.VoidRequest) -> None:
    v: Violations = []
    _idempotency_key(v, req.idempotency_key)
    _payment_id(v, req.payment_id)
    _text(v, "reason", req.reason, 256)
    if v:
        raise InvalidRequest(v)


def refund(req: gw.RefundRequest, *, max_amount_minor: int) -> None:
    v: Violations = []
    _idempotency_key(v, req.idempotency_key)
    _payment_id(v, req.payment_id)
    if req.HasField("amount"):
        _money(v, "amount", req.amount, max_amount_minor)
    _text(v, "reason", req.reason, 256)
    if v:
        raise InvalidRequest(v)


def payment_id(pid: str) -> None:
    v: Violations = []
    _payment_id(v, pid)
    if v:
        raise InvalidRequest(v)
