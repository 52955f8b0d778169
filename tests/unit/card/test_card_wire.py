"""Card wire format and durable parts without a socket: spec, mapping, journal, SAF queue."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.card import mapping, saf, spec, testcards
from adapters.card.journal import Journal, JournalError
from adapters.card.ledger import OpRecord
from adapters.card.spec import Message
from adapters.sdk.convert import luhn_valid
from adapters.sdk.errors import (
    InvalidResponseError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from adapters.sdk.types import DeclineCode, Money
from tests.unit.card.cardkit import auth, card, eventually

ACCEPTOR = mapping.Acceptor("TERM0001", "MERCHANT000001", "12345")
NOW = datetime(2026, 2, 28, 23, 59, 58, tzinfo=UTC)


def original() -> OpRecord:
    return OpRecord(
        reference="a-1", operation="AUTHORIZE", state="APPROVED", mti="0100", de3="000000",
        stan="000042", de7="0228235958", local_time="235958", local_date="0228",
        rrn="605923000042", amount=1234, currency="JPY", auth_id="A1B2C3",
    )  # fmt: skip


def test_every_message_survives_the_wire() -> None:
    times = mapping.wire_times(NOW)
    request = auth("a-1", testcards.APPROVE, 1234, "JPY")
    docs = [
        mapping.authorization(
            request, card(testcards.APPROVE), stan="000042", times=times, rrn="605923000042",
            acceptor=ACCEPTOR,
        ),
        mapping.completion(
            original(), Money(1000, "JPY"), stan="000043", times=times, acceptor=ACCEPTOR
        ),
        mapping.refund(
            original(), Money(500, "JPY"), stan="000044", times=times, rrn="605923000044",
            acceptor=ACCEPTOR,
        ),
        {**mapping.reversal(original(), ACCEPTOR), "t": "0420", "7": times["7"]},
        mapping.network(mapping.ECHO, stan="000045", now=NOW, acceptor=ACCEPTOR),
    ]  # fmt: skip
    for doc in docs:
        decoded = spec.decode(spec.encode(doc))
        assert {k: v for k, v in decoded.items() if k not in ("p", "1")} == doc
    assert docs[0]["4"] == "000000001234" and docs[0]["49"] == "392" and docs[0]["14"] == "3112"
    assert docs[3]["90"] == "0100" + "000042" + "0228235958" + "00000012345" + "0" * 11


def test_decode_errors_name_the_field_never_the_card_number() -> None:
    raw = spec.encode({"t": "0100", "2": testcards.APPROVE, "3": "000000", "4": "1" * 12})
    with pytest.raises(spec.MessageError) as caught:
        spec.decode(raw[:-3])
    assert "field 4" in str(caught.value) and testcards.APPROVE not in str(caught.value)
    with pytest.raises(spec.MessageError):
        spec.encode({"t": "0100", "4": "12"})  # fixed-length field not padded
    with pytest.raises(spec.MessageError):
        spec.encode({"t": "0100", "4": "00000000001A"})  # numeric field with a letter


def test_decline_table_covers_the_required_codes() -> None:
    required = [
        "01",
        "05",
        "12",
        "13",
        "14",
        "30",
        "41",
        "43",
        "51",
        "54",
        "55",
        "57",
        "58",
        "61",
        "91",
        "92",
        "94",
        "96",
    ]
    assert all(code in mapping.DECLINES for code in required)
    assert mapping.DECLINES["51"] is DeclineCode.INSUFFICIENT_FUNDS
    assert mapping.DE39_FOR[DeclineCode.STOLEN_CARD] == "43"
    assert all(mapping.DECLINES[mapping.DE39_FOR[d]] is d for d in mapping.DE39_FOR)


def test_luhn_masking_and_test_cards() -> None:
    assert luhn_valid("4242424242424242") and not luhn_valid("4242424242424241")
    assert mapping.mask_pan("4000000000000002") == "400000******0002"
    cards = [testcards.APPROVE, testcards.SLOW, testcards.NO_ANSWER, testcards.BLACKHOLE]
    cards += list(testcards.DECLINES.values())
    assert all(luhn_valid(c) for c in cards) and len(set(cards)) == len(cards)
    assert testcards.behaviour(testcards.DECLINES["05"]) == (testcards.Behaviour.ANSWER, "05")
    assert testcards.behaviour("4242424242424242") == (testcards.Behaviour.ANSWER, "00")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"t": "0210"}, "MTI"),
        ({"4": "000000000001"}, "DE4"),
        ({"41": "OTHER001"}, "DE41"),
        ({"39": ""}, "DE39"),
        ({"38": ""}, "DE38"),
    ],
)
def test_answers_that_do_not_fit_their_request_are_untrustworthy(
    change: Message, reason: str
) -> None:
    request = {"t": "0100", "4": "000000001000", "11": "000001", "37": "R1", "41": "TERM0001"}
    answer = {**request, "t": "0110", "38": "A1B2C3", "39": "00", **change}
    answer = {k: v for k, v in answer.items() if v}
    with pytest.raises(InvalidResponseError, match=reason):
        mapping.read_reply(request, answer)


def test_journal_drops_a_torn_last_line_but_not_a_corrupt_middle(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('{"kind":"op","n":1}\n{"kind":"op","n":2}\n{"kind":"o')
    assert [e["n"] for e in Journal(path).load()] == [1, 2]
    path.write_text('{"kind":"op","n":1}\nnot json\n{"kind":"op","n":2}\n')
    with pytest.raises(JournalError, match="line 2"):
        Journal(path).load()


async def test_journal_group_commit_keeps_every_append(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    journal.open()
    await asyncio.gather(*(journal.append({"kind": "op", "n": n}) for n in range(200)))
    await journal.close()
    assert sorted(e["n"] for e in Journal(tmp_path / "j.jsonl").load()) == list(range(200))


class FakeHost:
    """A SAF send function: each entry reference gets a scripted behaviour, calls are kept."""

    def __init__(self) -> None:
        self.calls: list[Message] = []
        self.behaviour: dict[str, str] = {}

    async def send(self, doc: Message, patience: float) -> Message:
        mode = self.behaviour.get(doc["37"], "answer")
        if mode == "down":
            raise UpstreamUnavailableError("no connection")
        self.calls.append(doc)
        if mode == "silent":
            await asyncio.sleep(patience)
            raise UpstreamTimeoutError("no answer")
        return {**doc, "t": spec.response_mti(doc["t"]), "39": "00"}


def entry(rrn: str) -> saf.SafEntry:
    fields = {**mapping.reversal(original(), ACCEPTOR), "37": rrn}
    return saf.SafEntry(rrn, saf.REVERSAL, rrn, fields, list(saf.REVERSAL_MTIS))


def queue(journal: Journal, host: FakeHost, settled: list[str], gave_up: list[str]) -> saf.SafQueue:
    async def judge(e: saf.SafEntry, mti: str, answer: Message) -> saf.Verdict:
        settled.append(e.id)
        return saf.Verdict.DONE

    async def give_up(e: saf.SafEntry) -> None:
        gave_up.append(e.id)

    config = saf.SafConfig(retry_base=0.01, retry_cap=0.02, max_attempts=4, response_timeout=0.05)
    return saf.SafQueue(
        journal=journal, config=config, send=host.send, judge=judge, give_up=give_up
    )


async def test_saf_repeats_as_advice_gives_up_and_never_blocks(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "saf.jsonl")
    journal.open()
    host, settled, gave_up = FakeHost(), [], []
    host.behaviour = {"STUCK": "silent"}
    q = queue(journal, host, settled, gave_up)
    await q.start()
    await q.enqueue(entry("STUCK"), {"2": testcards.APPROVE})
    await q.enqueue(entry("FINE"))
    await eventually(lambda: gave_up == ["STUCK"] and settled == ["FINE"])
    await q.stop()
    await journal.close()
    stuck = [c for c in host.calls if c["37"] == "STUCK"]
    assert [c["t"] for c in stuck] == ["0400", "0420", "0421", "0421"]
    assert "2" in stuck[0] and all("2" not in c for c in stuck[1:])  # the PAN only from memory
    assert testcards.APPROVE not in (tmp_path / "saf.jsonl").read_text()


async def test_saf_entries_survive_a_restart_and_unsent_attempts_are_free(tmp_path: Path) -> None:
    path = tmp_path / "saf.jsonl"
    journal = Journal(path)
    journal.open()
    host, settled, gave_up = FakeHost(), [], []
    host.behaviour = {"LATER": "down"}
    q = queue(journal, host, settled, gave_up)
    await q.start()
    await q.enqueue(entry("LATER"))
    await asyncio.sleep(0.2)  # many tries while the host is down: none of them counts
    await q.stop()
    await journal.close()
    assert host.calls == [] and gave_up == []
    journal = Journal(path)
    entries = journal.load()
    journal.open()
    host.behaviour = {}
    q = queue(journal, host, settled, gave_up)
    q.load(entries)
    await q.start()
    await eventually(lambda: settled == ["LATER"])
    await q.stop()
    await journal.close()
    assert [c["t"] for c in host.calls] == ["0400"]
