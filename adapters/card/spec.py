"""The card channel's ISO 8583 (1987) spec: the fields it uses, their formats, and the codec."""

from __future__ import annotations

import copy
import re
from typing import Any

import iso8583
from iso8583.specs import default_ascii

# Only these data elements may appear; anything else in a bitmap is a format error. The
# layouts come from pyiso8583's ASCII spec (LLVAR PAN, fixed-width numerics and so on).
FIELDS: tuple[str, ...] = (
    "2", "3", "4", "7", "11", "12", "13", "14", "22", "37", "38", "39", "41", "42", "49", "70",
    "90",
)  # fmt: skip

SPEC: dict[str, dict[str, Any]] = {
    key: copy.deepcopy(default_ascii[key]) for key in ("h", "t", "p", "1", *FIELDS)
}
SPEC["90"]["desc"] = "Original Data Elements (MTI 4, STAN 6, DE7 10, acquirer 11, forwarder 11)"

# n = digits only; an = letters and digits; ans = printable ASCII. pyiso8583 checks lengths but
# not content, so these are checked here on both sides of the wire.
FORMATS: dict[str, str] = {
    "2": "n", "3": "n", "4": "n", "7": "n", "11": "n", "12": "n", "13": "n", "14": "n",
    "22": "n", "37": "an", "38": "an", "39": "an", "41": "ans", "42": "ans", "49": "n",
    "70": "n", "90": "n",
}  # fmt: skip

_PATTERNS = {
    "n": re.compile(r"[0-9]*"),
    "an": re.compile(r"[A-Za-z0-9 ]*"),
    "ans": re.compile(r"[\x20-\x7e]*"),
}
_MTI = re.compile(r"0[1248][0-3][0-5]")

REQUEST_MTIS = frozenset({"0100", "0200", "0220", "0221", "0400", "0420", "0421", "0800"})

Message = dict[str, str]


class MessageError(ValueError):
    """A message that does not follow the spec; the text names the field, never its value.

    `routing` keeps what could be read of the MTI, STAN and terminal id, so that a host can
    still address a format-error answer to the sender.
    """

    def __init__(self, message: str, routing: Message | None = None) -> None:
        super().__init__(message)
        self.routing: Message = routing or {}


def response_mti(mti: str) -> str:
    """The MTI that answers a request MTI: 0100 -> 0110, 0421 -> 0430."""
    return mti[:2] + str(int(mti[2]) + 1) + "0"


def is_request(mti: str) -> bool:
    """Whether the MTI's function digit says request or advice (even), not response."""
    return int(mti[2]) % 2 == 0


def validate(doc: Message) -> None:
    """Check the MTI and every field's content; raise MessageError naming the first bad one."""
    mti = doc.get("t", "")
    if not _MTI.fullmatch(mti):
        raise MessageError("field t: not an ISO 8583 (1987) message type")
    for key, value in doc.items():
        if key in ("t", "p", "1", "h"):
            continue
        fmt = FORMATS.get(key)
        if fmt is None:
            raise MessageError(f"field {key}: not used by this channel")
        if not _PATTERNS[fmt].fullmatch(value):
            raise MessageError(f"field {key}: must be {fmt}")


def encode(doc: Message) -> bytes:
    """Encode a message; the bitmap is computed. A field that does not fit raises MessageError."""
    validate(doc)
    try:
        raw, _ = iso8583.encode(dict(doc), SPEC)
    except iso8583.EncodeError as exc:
        raise MessageError(f"cannot encode: {_where(exc)}") from exc
    return bytes(raw)


def decode(raw: bytes) -> Message:
    """Decode and validate one message (without its length header)."""
    try:
        doc, _ = iso8583.decode(bytearray(raw), SPEC)
    except iso8583.DecodeError as exc:
        routing = {k: str(v) for k, v in exc.doc_dec.items() if k in ("t", "11", "41")}
        raise MessageError(f"cannot decode: {_where(exc)}", routing) from exc
    except KeyError as exc:
        # pyiso8583 raises KeyError for a bitmap bit this spec does not define.
        message = f"cannot decode: field {exc.args[0]} is not used by this channel"
        raise MessageError(message, _mti_of(raw)) from exc
    except (ValueError, IndexError, TypeError) as exc:
        raise MessageError("cannot decode: malformed message", _mti_of(raw)) from exc
    result: Message = {k: str(v) for k, v in doc.items()}
    try:
        validate(result)
    except MessageError as exc:
        routing = {k: v for k, v in result.items() if k in ("t", "11", "41")}
        raise MessageError(str(exc), routing) from None
    return result


def _mti_of(raw: bytes) -> Message:
    mti = raw[:4].decode("ascii", "replace")
    return {"t": mti} if _MTI.fullmatch(mti) else {}


def _where(exc: iso8583.EncodeError | iso8583.DecodeError) -> str:
    # pyiso8583 messages name the field and position only; they never quote the data.
    return f"{exc.msg}: field {exc.field}"
