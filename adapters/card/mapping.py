"""Canonical requests <-> ISO 8583 fields, and the DE39 <-> DeclineCode table."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from adapters.card.ledger import OpRecord
from adapters.card.spec import Message, response_mti
from adapters.sdk.errors import InvalidRequestError, InvalidResponseError
from adapters.sdk.types import AuthorizeRequest, Card, DeclineCode, Money

# ISO 4217 numeric codes for DE49. DE4 carries minor units of that currency, so the exponent
# (0 for JPY, 2 for the others) never enters a conversion here.
CURRENCIES: dict[str, str] = {"USD": "840", "CNY": "156", "JPY": "392", "EUR": "978", "GBP": "826"}
CURRENCY_BY_NUMERIC: dict[str, str] = {num: alpha for alpha, num in CURRENCIES.items()}
MAX_AMOUNT_MINOR = 999_999_999_999  # DE4 is n12

APPROVED = "00"
UNABLE_TO_LOCATE_ORIGINAL = "25"
FORMAT_ERROR = "30"
RESPONSE_TOO_LATE = "68"
# Codes after which repeating an advice may succeed: the host or issuer was briefly down.
TRANSIENT = frozenset({"91", "92", "96"})

DECLINES: dict[str, DeclineCode] = {
    "01": DeclineCode.REFER_TO_ISSUER,
    "02": DeclineCode.REFER_TO_ISSUER,
    "04": DeclineCode.DO_NOT_HONOR,
    "05": DeclineCode.DO_NOT_HONOR,
    "06": DeclineCode.PROCESSING_ERROR,
    "12": DeclineCode.INVALID_TRANSACTION,
    "13": DeclineCode.INVALID_AMOUNT,
    "14": DeclineCode.INVALID_CARD_NUMBER,
    "25": DeclineCode.INVALID_TRANSACTION,
    "30": DeclineCode.PROCESSING_ERROR,
    "41": DeclineCode.LOST_CARD,
    "43": DeclineCode.STOLEN_CARD,
    "51": DeclineCode.INSUFFICIENT_FUNDS,
    "54": DeclineCode.EXPIRED_CARD,
    "55": DeclineCode.INCORRECT_PIN,
    "57": DeclineCode.TRANSACTION_NOT_PERMITTED,
    "58": DeclineCode.TRANSACTION_NOT_PERMITTED,
    "61": DeclineCode.EXCEEDS_LIMIT,
    "62": DeclineCode.TRANSACTION_NOT_PERMITTED,
    "65": DeclineCode.EXCEEDS_LIMIT,
    "68": DeclineCode.ISSUER_UNAVAILABLE,
    "75": DeclineCode.INCORRECT_PIN,
    "91": DeclineCode.ISSUER_UNAVAILABLE,
    "92": DeclineCode.ISSUER_UNAVAILABLE,
    "94": DeclineCode.DUPLICATE_TRANSACTION,
    "96": DeclineCode.PROCESSING_ERROR,
}

# The code a host sends for each canonical decline (the first ISO code listed for it above).
DE39_FOR: dict[DeclineCode, str] = {}
for _code, _decline in DECLINES.items():
    DE39_FOR.setdefault(_decline, _code)

PURCHASE = "000000"
REFUND = "200000"
POS_ENTRY_MODE = "012"  # PAN key-entered, no PIN entry capability
SIGN_ON = "001"
SIGN_OFF = "002"
ECHO = "301"


def _ascii_digits(text: str) -> bool:
    # str.isdigit() alone also takes '²' and Arabic-Indic or fullwidth digits, which no
    # numeric ISO 8583 field carries.
    return text.isascii() and text.isdigit()


def mask_pan(pan: str) -> str:
    """The PAN as it may be logged: first six and last four digits."""
    if len(pan) < 12:
        return "*" * len(pan)
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]


@dataclass(frozen=True, slots=True)
class Acceptor:
    """Who sends: the terminal (DE41), the card acceptor (DE42) and the acquirer id (DE90)."""

    terminal_id: str
    merchant_id: str
    acquirer_id: str = "0" * 11

    def __post_init__(self) -> None:
        if not 1 <= len(self.terminal_id) <= 8 or not self.terminal_id.isascii():
            raise ValueError("terminal_id: 1 to 8 ASCII characters")
        if not 1 <= len(self.merchant_id) <= 15 or not self.merchant_id.isascii():
            raise ValueError("merchant_id: 1 to 15 ASCII characters")
        if not (_ascii_digits(self.acquirer_id) and len(self.acquirer_id) <= 11):
            raise ValueError("acquirer_id: up to 11 digits (0-9)")

    def fields(self) -> Message:
        return {"41": self.terminal_id.ljust(8), "42": self.merchant_id.ljust(15)}


def amount_fields(money: Money, field: str = "amount") -> Message:
    """DE4 and DE49 for an amount, or InvalidRequestError naming `field`."""
    numeric = CURRENCIES.get(money.currency)
    if numeric is None:
        raise InvalidRequestError([(f"{field}.currency", "not accepted by the card channel")])
    if not 1 <= money.amount_minor <= MAX_AMOUNT_MINOR:
        raise InvalidRequestError([(f"{field}.amount_minor", f"1 to {MAX_AMOUNT_MINOR}")])
    return {"4": f"{money.amount_minor:012d}", "49": numeric}


def card_fields(card: Card) -> Message:
    """DE2 and DE14, or InvalidRequestError. Luhn is left to the host (it answers 14)."""
    violations = []
    if not (_ascii_digits(card.number) and 12 <= len(card.number) <= 19):
        violations.append(("payment_method.card.number", "12 to 19 digits"))
    if not 1 <= card.expiry_month <= 12:
        violations.append(("payment_method.card.expiry_month", "1 to 12"))
    if not 2000 <= card.expiry_year <= 2099:
        violations.append(("payment_method.card.expiry_year", "four digits, 2000 to 2099"))
    if violations:
        raise InvalidRequestError(violations)
    return {"2": card.number, "14": f"{card.expiry_year % 100:02d}{card.expiry_month:02d}"}


def wire_times(now: datetime) -> Message:
    """DE7 (transmission, UTC) and DE12/DE13 (the terminal's local time, also UTC here)."""
    return {
        "7": now.strftime("%m%d%H%M%S"),
        "12": now.strftime("%H%M%S"),
        "13": now.strftime("%m%d"),
    }


def retrieval_reference(now: datetime, stan: str) -> str:
    """DE37 as acquirers build it: last year digit, day of year, hour, then the STAN."""
    return f"{now.year % 10}{now.timetuple().tm_yday:03d}{now.hour:02d}{stan}"


def original_data(mti: str, stan: str, transmitted: str, acquirer_id: str) -> str:
    """DE90: original MTI, STAN and DE7, the acquirer id and an empty forwarder id."""
    return f"{mti}{stan}{transmitted}{acquirer_id.zfill(11)}{'0' * 11}"


def authorization(
    request: AuthorizeRequest,
    card: Card,
    *,
    stan: str,
    times: Message,
    rrn: str,
    acceptor: Acceptor,
) -> Message:
    """0100 (authorization) or, with capture, 0200 (sale). `times` holds DE7, DE12, DE13."""
    return {
        "t": "0200" if request.capture else "0100",
        **card_fields(card),
        "3": PURCHASE,
        **amount_fields(request.amount),
        **times,
        "11": stan,
        "22": POS_ENTRY_MODE,
        "37": rrn,
        **acceptor.fields(),
    }


def completion(
    original: OpRecord, amount: Money, *, stan: str, times: Message, acceptor: Acceptor
) -> Message:
    """0220: capture of an authorization, pointing at it through DE90, DE37 and DE38."""
    return {
        "t": "0220",
        "3": PURCHASE,
        **amount_fields(amount),
        **times,
        "11": stan,
        "22": POS_ENTRY_MODE,
        "37": original.rrn,
        "38": original.auth_id,
        **acceptor.fields(),
        "90": original_data(original.mti, original.stan, original.de7, acceptor.acquirer_id),
    }


def refund(
    original: OpRecord,
    amount: Money,
    *,
    stan: str,
    times: Message,
    rrn: str,
    acceptor: Acceptor,
) -> Message:
    """0200 with processing code 20, pointing at the captured original through DE90."""
    return {
        "t": "0200",
        "3": REFUND,
        **amount_fields(amount),
        **times,
        "11": stan,
        "22": POS_ENTRY_MODE,
        "37": rrn,
        **acceptor.fields(),
        "90": original_data(original.mti, original.stan, original.de7, acceptor.acquirer_id),
    }


def reversal(original: OpRecord, acceptor: Acceptor) -> Message:
    """The fields of a reversal of `original`, without MTI and DE7 (set at each sending).

    It carries the original's STAN and RRN and points at it through DE90, so a host can find
    the original without the card number.
    """
    return {
        "3": original.de3,
        "4": f"{original.amount:012d}",
        "11": original.stan,
        "12": original.local_time,
        "13": original.local_date,
        "22": POS_ENTRY_MODE,
        "37": original.rrn,
        **acceptor.fields(),
        "49": CURRENCIES[original.currency],
        "90": original_data(original.mti, original.stan, original.de7, acceptor.acquirer_id),
    }


def network(code: str, *, stan: str, now: datetime, acceptor: Acceptor) -> Message:
    """0800 network management: sign-on (001), sign-off (002) or echo (301)."""
    return {
        "t": "0800",
        "7": wire_times(now)["7"],
        "11": stan,
        "41": acceptor.fields()["41"],
        "70": code,
    }


class Verdict(enum.Enum):
    """What an answer means for the operation."""

    APPROVED = "approved"
    DECLINED = "declined"
    UNKNOWN = "unknown"  # a code this channel does not know: treated as an unknown outcome


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer from the host, checked against its request."""

    verdict: Verdict
    code: str
    decline: DeclineCode | None = None
    auth_id: str = ""
    rrn: str = ""


def read_reply(request: Message, response: Message) -> Reply:
    """Check that the answer belongs to the request and say what it means.

    An answer that does not echo the request (another MTI, amount, currency or RRN), lacks
    DE39, or approves an authorization without an authorization id cannot be trusted:
    InvalidResponseError, which leaves the outcome unknown.
    """
    if response.get("t") != response_mti(request["t"]):
        raise InvalidResponseError(f"answer MTI {response.get('t')} does not answer {request['t']}")
    for key in ("4", "11", "37", "41", "49"):
        if key in response and key in request and response[key] != request[key]:
            raise InvalidResponseError(f"answer changes DE{key} of the request")
    code = response.get("39", "")
    if len(code) != 2:
        raise InvalidResponseError("answer has no response code (DE39)")
    if code == APPROVED:
        auth_id = response.get("38", "").strip()
        if request["t"] == "0100" and not auth_id:
            raise InvalidResponseError("approval without an authorization id (DE38)")
        return Reply(Verdict.APPROVED, code, auth_id=auth_id, rrn=response.get("37", ""))
    decline = DECLINES.get(code)
    if decline is None:
        return Reply(Verdict.UNKNOWN, code, rrn=response.get("37", ""))
    return Reply(Verdict.DECLINED, code, decline=decline, rrn=response.get("37", ""))
