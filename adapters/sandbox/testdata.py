"""The sandbox's test instruments: card numbers and wallet-code endings that choose an outcome.

Every card number is Luhn-valid. A card number not listed here approves. A wallet payment code
(16 to 24 digits, Alipay-style or WeChat-Pay-style) chooses its outcome by its last four digits;
an ending not listed approves. The README has the same tables.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from adapters.sdk.types import DeclineCode


class Scenario(enum.Enum):
    """How the sandbox's pretend upstream treats an authorization."""

    APPROVE = "approve"
    DECLINE = "decline"
    SLOW = "slow"  # approves after --slow-ms
    TIMEOUT = "timeout"  # approved upstream, but the answer never comes (--hang-ms)
    PENDING = "pending"  # answers PENDING at once, settles after --pending-resolve-ms


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What an instrument does: its scenario and, for declines, the codes it declines with.

    For PENDING, `decline` set means the payment settles as that decline instead of approving.
    """

    scenario: Scenario
    decline: DeclineCode | None = None
    raw_code: str = ""


APPROVE = Behaviour(Scenario.APPROVE, raw_code="00")

CARD_APPROVE_VISA = "4242424242424242"
CARD_APPROVE_MASTERCARD = "5555555555554444"
CARD_DO_NOT_HONOR = "4000000000000002"
CARD_INSUFFICIENT_FUNDS = "4000000000009995"
CARD_EXPIRED = "4000000000000069"
CARD_INVALID_NUMBER = "4000000000001141"
CARD_INVALID_AMOUNT = "4000000000001133"
CARD_INVALID_TRANSACTION = "4000000000001125"
CARD_LOST = "4000000000009987"
CARD_STOLEN = "4100000000000019"
CARD_INCORRECT_PIN = "4000000000000127"
CARD_NOT_PERMITTED = "4000000000001570"
CARD_EXCEEDS_LIMIT = "4000000000006975"
CARD_ISSUER_UNAVAILABLE = "4000000000000101"
CARD_PROCESSING_ERROR = "4000000000000119"
CARD_REFER_TO_ISSUER = "4000000000001018"
CARD_DUPLICATE = "4000000000001943"
CARD_INVALID_PAYMENT_CODE = "4000000000001166"
CARD_BUYER_CANCELLED = "4000000000001174"
CARD_INVALID_STATE = "4000000000001190"
CARD_SLOW = "4000000000003220"
CARD_TIMEOUT = "4000000000000341"
CARD_PENDING = "4000000000000259"


def _decline(code: DeclineCode, raw: str) -> Behaviour:
    return Behaviour(Scenario.DECLINE, code, raw)


# Raw codes are ISO 8583 DE39 where DE39 has one; "S" codes are the sandbox's own.
CARDS: dict[str, Behaviour] = {
    CARD_APPROVE_VISA: APPROVE,
    CARD_APPROVE_MASTERCARD: APPROVE,
    CARD_DO_NOT_HONOR: _decline(DeclineCode.DO_NOT_HONOR, "05"),
    CARD_INSUFFICIENT_FUNDS: _decline(DeclineCode.INSUFFICIENT_FUNDS, "51"),
    CARD_EXPIRED: _decline(DeclineCode.EXPIRED_CARD, "54"),
    CARD_INVALID_NUMBER: _decline(DeclineCode.INVALID_CARD_NUMBER, "14"),
    CARD_INVALID_AMOUNT: _decline(DeclineCode.INVALID_AMOUNT, "13"),
    CARD_INVALID_TRANSACTION: _decline(DeclineCode.INVALID_TRANSACTION, "12"),
    CARD_LOST: _decline(DeclineCode.LOST_CARD, "41"),
    CARD_STOLEN: _decline(DeclineCode.STOLEN_CARD, "43"),
    CARD_INCORRECT_PIN: _decline(DeclineCode.INCORRECT_PIN, "55"),
    CARD_NOT_PERMITTED: _decline(DeclineCode.TRANSACTION_NOT_PERMITTED, "57"),
    CARD_EXCEEDS_LIMIT: _decline(DeclineCode.EXCEEDS_LIMIT, "61"),
    CARD_ISSUER_UNAVAILABLE: _decline(DeclineCode.ISSUER_UNAVAILABLE, "91"),
    CARD_PROCESSING_ERROR: _decline(DeclineCode.PROCESSING_ERROR, "96"),
    CARD_REFER_TO_ISSUER: _decline(DeclineCode.REFER_TO_ISSUER, "01"),
    CARD_DUPLICATE: _decline(DeclineCode.DUPLICATE_TRANSACTION, "94"),
    CARD_INVALID_PAYMENT_CODE: _decline(DeclineCode.INVALID_PAYMENT_CODE, "S16"),
    CARD_BUYER_CANCELLED: _decline(DeclineCode.BUYER_CANCELLED, "S17"),
    CARD_INVALID_STATE: _decline(DeclineCode.INVALID_STATE, "S19"),
    CARD_SLOW: Behaviour(Scenario.SLOW, raw_code="00"),
    CARD_TIMEOUT: Behaviour(Scenario.TIMEOUT, raw_code="00"),
    CARD_PENDING: Behaviour(Scenario.PENDING, raw_code="00"),
}

# Wallet payment codes: the outcome is chosen by the last four digits, which are the raw code.
WALLET_APPROVE = "0000"
WALLET_DO_NOT_HONOR = "0005"
WALLET_INSUFFICIENT_FUNDS = "0051"
WALLET_INVALID_PAYMENT_CODE = "0016"
WALLET_BUYER_CANCELLED = "0017"
WALLET_SLOW = "9000"
WALLET_PENDING_APPROVE = "9001"
WALLET_PENDING_DECLINE = "9002"
WALLET_TIMEOUT = "9999"

WALLET_ENDINGS: dict[str, Behaviour] = {
    WALLET_APPROVE: Behaviour(Scenario.APPROVE, raw_code=WALLET_APPROVE),
    WALLET_DO_NOT_HONOR: _decline(DeclineCode.DO_NOT_HONOR, WALLET_DO_NOT_HONOR),
    WALLET_INSUFFICIENT_FUNDS: _decline(DeclineCode.INSUFFICIENT_FUNDS, WALLET_INSUFFICIENT_FUNDS),
    WALLET_INVALID_PAYMENT_CODE: _decline(
        DeclineCode.INVALID_PAYMENT_CODE, WALLET_INVALID_PAYMENT_CODE
    ),
    WALLET_BUYER_CANCELLED: _decline(DeclineCode.BUYER_CANCELLED, WALLET_BUYER_CANCELLED),
    WALLET_SLOW: Behaviour(Scenario.SLOW, raw_code=WALLET_SLOW),
    WALLET_PENDING_APPROVE: Behaviour(Scenario.PENDING, raw_code=WALLET_PENDING_APPROVE),
    WALLET_PENDING_DECLINE: Behaviour(
        Scenario.PENDING, DeclineCode.BUYER_CANCELLED, WALLET_PENDING_DECLINE
    ),
    WALLET_TIMEOUT: Behaviour(Scenario.TIMEOUT, raw_code=WALLET_TIMEOUT),
}


def wallet_code(ending: str, prefix: str = "28") -> str:
    """An 18-digit wallet payment code starting with `prefix` and ending with `ending`.

    Alipay-style codes start with 25 to 30, WeChat-Pay-style ones with 10 to 15.
    """
    if len(ending) != 4 or not ending.isdigit() or not prefix.isdigit() or len(prefix) > 8:
        raise ValueError("ending must be 4 digits and prefix at most 8 digits")
    return prefix + "6" * (14 - len(prefix)) + ending


def card_behaviour(number: str) -> Behaviour:
    """What a card number does; numbers not in the table approve."""
    return CARDS.get(number, APPROVE)


def wallet_behaviour(auth_code: str) -> Behaviour:
    """What a wallet payment code does, by its last four digits; other endings approve."""
    return WALLET_ENDINGS.get(auth_code[-4:], WALLET_ENDINGS[WALLET_APPROVE])
