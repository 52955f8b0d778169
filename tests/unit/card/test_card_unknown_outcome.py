"""Unknown outcomes: no answer means PENDING, a reversal (or repeated advice) settles it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from adapters.card import testcards
from adapters.card.host import load_state
from adapters.card.ledger import OpRecord
from adapters.card.spec import Message
from adapters.sdk.types import DeclineCode, OperationStatus, OperationType
from tests.unit.card.cardkit import (
    AdapterFactory,
    RunningSimulator,
    auth,
    capture,
    eventually,
    host_record,
    inquire,
    refund,
    void,
)

PENDING = OperationStatus.PENDING
REVERSALS = ("0400", "0420", "0421")


def reversals(doc: Message) -> bool:
    return doc["t"] in REVERSALS


async def test_no_answer_is_pending_until_the_reversal_is_acknowledged(
    simulator: RunningSimulator, make_adapter: AdapterFactory, tmp_path: Path
) -> None:
    adapter, events = await make_adapter(simulator.port)
    result = await adapter.authorize(auth("n-1", testcards.NO_ANSWER))
    assert result.status is PENDING
    event = await events.wait_for("n-1")
    assert event.operation is OperationType.AUTHORIZE
    assert event.result.status is OperationStatus.DECLINED and event.result.raw_code == "68"
    inquired = await adapter.inquire(inquire("n-1"))
    assert inquired.status is OperationStatus.DECLINED
    assert inquired.decline_code is DeclineCode.ISSUER_UNAVAILABLE
    # The host had approved it; the reversal released it, so nothing stays charged.
    assert host_record(tmp_path / "host.jsonl", result.upstream_reference).reversed
    assert simulator.host.seen.count("0400") == 1


async def test_late_answer_is_not_taken_as_approval(
    simulator: RunningSimulator, make_adapter: AdapterFactory, tmp_path: Path
) -> None:
    adapter, events = await make_adapter(simulator.port)
    result = await adapter.authorize(auth("slow-1", testcards.SLOW))
    assert result.status is PENDING
    assert (await events.wait_for("slow-1")).result.status is OperationStatus.DECLINED
    assert host_record(tmp_path / "host.jsonl", result.upstream_reference).reversed


async def test_unacknowledged_reversal_survives_a_restart(
    simulator: RunningSimulator, make_adapter: AdapterFactory, tmp_path: Path
) -> None:
    simulator.host.drop = reversals
    first, _ = await make_adapter(simulator.port)
    result = await first.authorize(auth("r-1", testcards.NO_ANSWER))
    assert result.status is PENDING
    # 0400, then 0420, then 0421: all dropped.
    await eventually(lambda: simulator.host.seen.count("0421") >= 1)
    await first.stop()
    simulator.host.drop = None
    second, events = await make_adapter(simulator.port)
    assert (await second.inquire(inquire("r-1"))).status is PENDING
    assert (await events.wait_for("r-1")).result.status is OperationStatus.DECLINED
    assert host_record(tmp_path / "host.jsonl", result.upstream_reference).reversed
    journal = (tmp_path / "card-saf.jsonl").read_text()
    assert testcards.NO_ANSWER not in journal and '"737"' not in journal


async def test_stuck_reversal_does_not_block_others_then_becomes_an_exception(
    simulator: RunningSimulator, make_adapter: AdapterFactory, tmp_path: Path
) -> None:
    adapter, events = await make_adapter(simulator.port, saf_max_attempts=4)
    stuck = await adapter.authorize(auth("stuck-1", testcards.BLACKHOLE))
    other = await adapter.authorize(auth("other-1", testcards.NO_ANSWER))
    assert stuck.status is PENDING and other.status is PENDING
    assert (await events.wait_for("other-1")).result.status is OperationStatus.DECLINED

    async def in_exception_queue() -> bool:
        return "exception queue" in (await adapter.inquire(inquire("stuck-1"))).message

    await eventually(in_exception_queue)
    final = await adapter.inquire(inquire("stuck-1"))
    assert final.status is PENDING  # never claimed settled: a person must look at it
    lines = [json.loads(line) for line in (tmp_path / "card-saf.jsonl").read_text().splitlines()]
    saf = [e["entry"] for e in lines if e["kind"] == "saf"]
    assert [e["state"] for e in saf if e["reference"] == "stuck-1"][-1] == "exception"
    assert simulator.host.seen.count("0421") >= 2


async def test_void_of_a_pending_authorization_is_settled_by_its_reversal(
    simulator: RunningSimulator, make_adapter: AdapterFactory
) -> None:
    simulator.host.drop = reversals
    adapter, events = await make_adapter(simulator.port)
    assert (await adapter.authorize(auth("p-1", testcards.NO_ANSWER))).status is PENDING
    voided = await adapter.void(void("pv-1", "p-1"))
    assert voided.status is PENDING
    simulator.host.drop = None
    assert (await events.wait_for("pv-1")).result.status is OperationStatus.APPROVED
    assert (await events.wait_for("p-1")).result.status is OperationStatus.DECLINED


async def test_unanswered_void_is_repeated_as_advice(
    simulator: RunningSimulator, make_adapter: AdapterFactory, tmp_path: Path
) -> None:
    adapter, events = await make_adapter(simulator.port)
    approved = await adapter.authorize(auth("va-1", testcards.APPROVE))
    simulator.host.drop = lambda doc: doc["t"] == "0400"
    assert (await adapter.void(void("vv-1", "va-1"))).status is PENDING
    assert (await events.wait_for("vv-1")).result.status is OperationStatus.APPROVED
    assert "0420" in simulator.host.seen
    assert host_record(tmp_path / "host.jsonl", approved.upstream_reference).reversed


async def test_unanswered_capture_is_repeated_as_0221(
    simulator: RunningSimulator, make_adapter: AdapterFactory, tmp_path: Path
) -> None:
    adapter, events = await make_adapter(simulator.port)
    approved = await adapter.authorize(auth("ca-1", testcards.APPROVE, 1000))
    simulator.host.drop = lambda doc: doc["t"] == "0220"
    assert (await adapter.capture(capture("cc-1", "ca-1", 700, 1000))).status is PENDING
    event = await events.wait_for("cc-1")
    assert event.operation is OperationType.CAPTURE
    assert event.result.status is OperationStatus.APPROVED
    # The first 0220 was applied by the host though never answered; the 0221 repeat is
    # recognised, so the payment is captured once.
    assert host_record(tmp_path / "host.jsonl", approved.upstream_reference).captured == 700


async def test_unanswered_refund_is_reversed(
    simulator: RunningSimulator, make_adapter: AdapterFactory, tmp_path: Path
) -> None:
    adapter, events = await make_adapter(simulator.port)
    sale = await adapter.authorize(auth("ra-1", testcards.APPROVE, 900, capture=True))
    simulator.host.drop = lambda doc: doc["t"] == "0200" and doc["3"] == "200000"
    assert (await adapter.refund(refund("rr-1", "ra-1", 900, 900))).status is PENDING
    event = await events.wait_for("rr-1")
    assert event.result.status is OperationStatus.DECLINED
    assert host_record(tmp_path / "host.jsonl", sale.upstream_reference).refunded == 0


async def test_a_crash_mid_flight_is_reversed_at_the_next_start(
    simulator: RunningSimulator, make_adapter: AdapterFactory, tmp_path: Path
) -> None:
    # What a crash leaves behind: a record journaled as SENT and never settled. The host did
    # get the authorization (it is sent first with an in-process adapter).
    adapter, _ = await make_adapter(simulator.port)
    simulator.host.drop = lambda doc: doc["t"] in ("0100", *REVERSALS)
    await adapter.authorize(auth("crash-1", testcards.APPROVE))
    await adapter.stop()
    journal = tmp_path / "card-saf.jsonl"
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    sent = next(OpRecord.from_entry(e) for e in lines if e.get("reference") == "crash-1")
    assert sent.state == "SENT"
    journal.write_text(json.dumps(sent.to_entry()) + "\n")
    simulator.host.drop = None
    restarted, events = await make_adapter(simulator.port)
    assert (await restarted.inquire(inquire("crash-1"))).status is PENDING
    assert (await events.wait_for("crash-1")).result.status is OperationStatus.DECLINED
    assert host_record(tmp_path / "host.jsonl", sent.rrn).reversed


async def test_a_caller_that_gives_up_does_not_abandon_the_authorization(
    simulator: RunningSimulator, make_adapter: AdapterFactory, tmp_path: Path
) -> None:
    adapter, events = await make_adapter(simulator.port)
    call = asyncio.ensure_future(adapter.authorize(auth("gone-1", testcards.NO_ANSWER)))
    await eventually(lambda: "0100" in simulator.host.seen)
    call.cancel()  # what a gRPC deadline does to the worker's handler
    assert (await adapter.inquire(inquire("gone-1"))).status is PENDING
    assert (await events.wait_for("gone-1")).result.status is OperationStatus.DECLINED
    [record] = [r for r in load_state(tmp_path / "host.jsonl").values() if r.code == "00"]
    assert record.reversed
