"""Test card numbers: Luhn-valid PANs that make the simulator approve, decline, dawdle or go silent.

    4000 0000 0000 0XYc   answer DE39 = XY (00 approves; 05, 51, ... decline with that code)
    4000 0000 0000 901c   approve, but only after the simulator's --slow-seconds
    4000 0000 0000 902c   approve and remember it, but never answer (reversals are answered)
    4000 0000 0000 903c   never answer anything about this card, reversals included

c is the Luhn check digit. Any other Luhn-valid number is approved.
"""

from __future__ import annotations

import enum

from adapters.sdk.convert import luhn_valid


def with_check_digit(body: str) -> str:
    """Append the digit that makes `body` Luhn-valid."""
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


class Behaviour(enum.Enum):
    """What the simulator does with an authorization or sale for a card."""

    ANSWER = "answer"
    SLOW = "slow"
    SILENT = "silent"
    BLACKHOLE = "blackhole"


_CODE_PREFIX = "4000000000000"
_SPECIAL_PREFIX = "4000000000009"

APPROVE = with_check_digit(_CODE_PREFIX + "00")
DECLINE_CODES = (
    "01", "05", "12", "13", "14", "30", "41", "43", "51", "54", "55", "57", "58", "61", "91",
    "92", "94", "96",
)  # fmt: skip
DECLINES: dict[str, str] = {code: with_check_digit(_CODE_PREFIX + code) for code in DECLINE_CODES}
SLOW = with_check_digit(_SPECIAL_PREFIX + "01")
NO_ANSWER = with_check_digit(_SPECIAL_PREFIX + "02")
BLACKHOLE = with_check_digit(_SPECIAL_PREFIX + "03")
_SPECIAL = {SLOW: Behaviour.SLOW, NO_ANSWER: Behaviour.SILENT, BLACKHOLE: Behaviour.BLACKHOLE}


def behaviour(pan: str) -> tuple[Behaviour, str]:
    """What the simulator does for `pan`, and the DE39 it answers (or would have answered)."""
    special = _SPECIAL.get(pan)
    if special is not None:
        return special, "00"
    if len(pan) == 16 and pan.startswith(_CODE_PREFIX):
        return Behaviour.ANSWER, pan[13:15]
    return Behaviour.ANSWER, "00"
