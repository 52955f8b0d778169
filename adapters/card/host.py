"""The simulated acquirer host's rules and memory: what it answers to each request, and why."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.card import mapping, testcards
from adapters.card.spec import Message, is_request, response_mti
from adapters.sdk.convert import luhn_valid

log = logging.getLogger(__name__)

_PURCHASE_FIELDS = {"2", "3", "4", "7", "11", "12", "13", "14", "22", "37", "41", "42", "49"}
_REFUND_FIELDS = {"3", "4", "7", "11", "12", "13", "22", "37", "41", "42", "49", "90"}
_COMPLETION_FIELDS = _REFUND_FIELDS | {"38"}
_REVERSAL_FIELDS = {"3", "4", "7", "11", "12", "13", "37", "41", "42", "49", "90"}
# (mandatory, optional) fields of each request MTI; anything else is a format error.
_LAYOUT: dict[str, tuple[set[str], set[str]]] = {
    "0100": (_PURCHASE_FIELDS, set()),
    "0200": (_PURCHASE_FIELDS, set()),
    "0220": (_COMPLETION_FIELDS, set()),
    "0221": (_COMPLETION_FIELDS, set()),
    "0400": (_REVERSAL_FIELDS, {"2", "14", "22"}),
    "0420": (_REVERSAL_FIELDS, {"22"}),
    "0421": (_REVERSAL_FIELDS, {"22"}),
    "0800": ({"7", "11", "70"}, {"41"}),
}
_DATE_FORMATS = {"7": "%m%d%H%M%S", "12": "%H%M%S", "13": "%m%d"}
_ECHOED = ("3", "4", "7", "11", "12", "13", "37", "41", "42", "49", "70", "90")


@dataclass(slots=True)
class HostRecord:
    """One authorization, sale or refund as the host remembers it (never the full PAN)."""

    key: str  # terminal id | STAN | DE7 of the message
    mti: str
    de3: str
    amount: int
    currency: str
    stan: str
    rrn: str
    code: str
    auth_id: str = ""
    card: str = ""  # masked
    behaviour: str = testcards.Behaviour.ANSWER.value
    captured: int = 0
    refunded: int = 0
    reversed: bool = False
    parent: str = ""  # a refund: the key of what it refunds
    completions: list[str] = dataclasses.field(default_factory=list)  # STANs applied


@dataclass(frozen=True, slots=True)
class Action:
    """What to send back: `reply` after `delay` seconds, or nothing when `reply` is None."""

    reply: Message | None
    delay: float = 0.0


def load_state(path: Path) -> dict[str, HostRecord]:
    """The host's memory as saved in its state file (tests read it to check outcomes)."""
    records: dict[str, HostRecord] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    data = json.loads(line)
                except ValueError:
                    continue  # a torn last line from a killed host
                records[data["key"]] = HostRecord(**data)
    return records


class AcquirerHost:
    """Checks every request like a strict host and answers from its memory."""

    def __init__(
        self,
        *,
        state_file: Path | None = None,
        slow_seconds: float = 3.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._state_file = state_file
        self._slow = slow_seconds
        self._clock = clock
        self.records: dict[str, HostRecord] = load_state(state_file) if state_file else {}

    def handle(self, doc: Message, signed_on: bool) -> Action:
        """The answer to one decoded request (or None for an answer nobody asked)."""
        mti = doc["t"]
        if not is_request(mti):
            return Action(None)
        layout = _LAYOUT.get(mti)
        if layout is None:
            return self._answer(doc, "12")
        mandatory, optional = layout
        if mti == "0200" and doc.get("3") == mapping.REFUND:
            mandatory, optional = _REFUND_FIELDS, set()
        present = set(doc) - {"t", "p", "1"}
        if not mandatory <= present or present - mandatory - optional or not self._dates_ok(doc):
            return self._answer(doc, mapping.FORMAT_ERROR)
        if mti == "0800":
            known = doc["70"] in (mapping.SIGN_ON, mapping.SIGN_OFF, mapping.ECHO)
            return self._answer(doc, mapping.APPROVED if known else "12")
        if not signed_on:
            return self._answer(doc, "91")
        if doc["49"] not in mapping.CURRENCY_BY_NUMERIC or doc["3"] not in (
            mapping.PURCHASE,
            mapping.REFUND,
        ):
            return self._answer(doc, "12")
        if int(doc["4"]) == 0:
            return self._answer(doc, "13")
        if mti in ("0100", "0200") and doc["3"] == mapping.PURCHASE:
            return self._purchase(doc)
        if mti == "0200":
            return self._refund(doc)
        if mti in ("0220", "0221"):
            return self._completion(doc)
        return self._reversal(doc)

    # -- flows ------------------------------------------------------------------------------

    def _purchase(self, doc: Message) -> Action:
        key = _key(doc["41"], doc["11"], doc["7"])
        if key in self.records:
            return self._answer(doc, "94")
        pan = doc["2"]
        behaviour, code = testcards.behaviour(pan)
        now = self._clock()
        if not luhn_valid(pan) or not 12 <= len(pan) <= 19:
            code = "14"
        elif doc["14"] < now.strftime("%y%m"):
            code = "54"
        record = self._remember(
            doc, key, code, card=mapping.mask_pan(pan), behaviour=behaviour.value
        )
        if code == mapping.APPROVED and doc["t"] == "0200":
            record.captured = record.amount
            self._save(record)
        log.info("%s %s card %s: %s", doc["t"], doc["11"], record.card, code)
        if behaviour in (testcards.Behaviour.SILENT, testcards.Behaviour.BLACKHOLE):
            return Action(None)
        extra = {"38": record.auth_id} if record.auth_id else {}
        delay = self._slow if behaviour is testcards.Behaviour.SLOW else 0.0
        return self._answer(doc, code, extra, delay)

    def _refund(self, doc: Message) -> Action:
        key = _key(doc["41"], doc["11"], doc["7"])
        if key in self.records:
            return self._answer(doc, "94")
        original = self._original(doc)
        if original is None:
            return self._answer(doc, mapping.UNABLE_TO_LOCATE_ORIGINAL)
        amount = int(doc["4"])
        usable = original.code == mapping.APPROVED and not original.reversed and original.captured
        if not usable or not _same_currency(original, doc):
            code = "12"
        elif amount > original.captured - original.refunded:
            code = "13"
        else:
            code = mapping.APPROVED
            original.refunded += amount
            self._save(original)
        self._remember(doc, key, code, parent=original.key)
        return self._answer(doc, code)

    def _completion(self, doc: Message) -> Action:
        original = self._original(doc)
        if original is None:
            return self._answer(doc, mapping.UNABLE_TO_LOCATE_ORIGINAL)
        if original.behaviour == testcards.Behaviour.BLACKHOLE.value:
            return Action(None)
        if doc["11"] in original.completions:
            return self._answer(doc, mapping.APPROVED)  # a repeated advice
        amount = int(doc["4"])
        usable = original.mti == "0100" and original.code == mapping.APPROVED
        usable = usable and not original.reversed and not original.captured
        if not usable or doc["38"].strip() != original.auth_id or not _same_currency(original, doc):
            code = "12"
        elif amount > original.amount:
            code = "13"
        else:
            code = mapping.APPROVED
            original.captured = amount
            original.completions.append(doc["11"])
            self._save(original)
        return self._answer(doc, code)

    def _reversal(self, doc: Message) -> Action:
        original = self._original(doc)
        if original is None or original.stan != doc["11"] or original.rrn != doc["37"]:
            return self._answer(doc, mapping.UNABLE_TO_LOCATE_ORIGINAL)
        if original.behaviour == testcards.Behaviour.BLACKHOLE.value:
            return Action(None)
        if original.reversed:
            return self._answer(doc, mapping.APPROVED)  # repeated reversals are acknowledged
        if int(doc["4"]) != original.amount:
            return self._answer(doc, "13")
        if original.code == mapping.APPROVED and (
            (original.mti == "0100" and original.captured) or original.refunded
        ):
            return self._answer(doc, "12")
        original.reversed = True
        self._save(original)
        parent = self.records.get(original.parent)
        if parent is not None and original.code == mapping.APPROVED:
            parent.refunded -= original.amount
            self._save(parent)
        log.info("%s reversed %s STAN %s", doc["t"], original.mti, original.stan)
        return self._answer(doc, mapping.APPROVED)

    # -- memory and answers -----------------------------------------------------------------

    def _original(self, doc: Message) -> HostRecord | None:
        de90 = doc["90"]
        return self.records.get(_key(doc["41"], de90[4:10], de90[10:20]))

    def _remember(self, doc: Message, key: str, code: str, **extra: Any) -> HostRecord:
        record = HostRecord(
            key=key, mti=doc["t"], de3=doc["3"], amount=int(doc["4"]),
            currency=mapping.CURRENCY_BY_NUMERIC[doc["49"]], stan=doc["11"], rrn=doc["37"],
            code=code, auth_id=f"{secrets.randbelow(10**6):06d}" if code == "00" else "", **extra,
        )  # fmt: skip
        self.records[key] = record
        self._save(record)
        return record

    def _save(self, record: HostRecord) -> None:
        if self._state_file is None:
            return
        line = json.dumps(dataclasses.asdict(record), separators=(",", ":")) + "\n"
        # Unbuffered append: what the host answered survives a kill of the host process.
        fd = os.open(self._state_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    @staticmethod
    def _dates_ok(doc: Message) -> bool:
        try:
            for key, fmt in _DATE_FORMATS.items():
                if key in doc:
                    # A leap year, so that 0229 is a date.
                    datetime.strptime("2000" + doc[key], "%Y" + fmt)
            if "14" in doc:
                datetime.strptime(doc["14"], "%y%m")
        except ValueError:
            return False
        return True

    @staticmethod
    def _answer(
        doc: Message, code: str, extra: Message | None = None, delay: float = 0.0
    ) -> Action:
        reply = {"t": response_mti(doc["t"]), **{k: doc[k] for k in _ECHOED if k in doc}}
        reply.update(extra or {})
        reply["39"] = code
        return Action(reply, delay)


def _same_currency(record: HostRecord, doc: Message) -> bool:
    return mapping.CURRENCIES.get(record.currency) == doc["49"]


def _key(terminal: str, stan: str, transmitted: str) -> str:
    return f"{terminal.strip()}|{stan}|{transmitted}"
