"""The wallets' journal of open operations: what a restart remembers, and a file kept small."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import resource
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.sdk.errors import UpstreamTimeoutError, UpstreamUnavailableError
from adapters.sdk.types import (
    InquireRequest,
    Money,
    OperationResult,
    OperationStatus,
    OperationType,
)
from adapters.walletkit.memo import OpenOperation, OperationMemo
from adapters.walletkit.openlog import OpenLog, OpenLogError

AUTH, REFUND = OperationType.AUTHORIZE, OperationType.REFUND
NO_RECORD = OperationResult(status=OperationStatus.NOT_FOUND, raw_code="TRADE_NOT_EXIST")


class Clock:
    """Wall and monotonic time a test moves by hand (a restart resets monotonic time)."""

    def __init__(self) -> None:
        self.now = 1_767_225_600.0
        self.mono = 100.0

    def wall(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds


def started(
    path: Path, clock: Clock, slack_lines: int = 4096, sync: Callable[[int], None] = os.fsync
) -> tuple[OperationMemo, OpenLog]:
    """A memo whose open operations a journal at `path` keeps, as an adapter's start makes it."""
    memo = OperationMemo(clock=clock.monotonic)
    journal = OpenLog(
        path,
        keep_for_s=60.0,
        slack_lines=slack_lines,
        sync=sync,
        wall=clock.wall,
        monotonic=clock.monotonic,
    )
    memo.restore(journal.open(memo.open_operations), journal)
    return memo, journal


async def unanswered(memo: OperationMemo, reference: str, op: OperationType = AUTH) -> None:
    async def lost() -> OperationResult:
        raise UpstreamTimeoutError("no answer")

    with pytest.raises(UpstreamTimeoutError):
        await memo.once(reference, op, "pay-1", send=lost)


async def answered(memo: OperationMemo, reference: str) -> None:
    async def approved() -> OperationResult:
        return OperationResult.approved()

    await memo.once(reference, AUTH, reference, send=approved)


async def platform_has_no_record(op: OpenOperation) -> OperationResult:
    return NO_RECORD


async def test_an_operation_sent_and_unanswered_is_still_pending_after_a_restart(
    tmp_path: Path,
) -> None:
    path, clock = tmp_path / "state" / "alipay-open.jsonl", Clock()
    memo, journal = started(path, clock)
    await unanswered(memo, "pay-1")
    await unanswered(memo, "rf-1", REFUND)
    await answered(memo, "pay-2")
    journal.close()  # or a crash: every open note was on disk before its request left
    clock.advance(5)
    clock.mono = 3.0  # a new process

    again, _ = started(path, clock)
    assert [(o.reference, o.operation, o.original_reference) for o in again.open_operations()] == [
        ("pay-1", AUTH, "pay-1"),
        ("rf-1", REFUND, "pay-1"),
    ]
    inquire = InquireRequest("pay-1", "m", AUTH, "", None)
    early = await again.inquire(inquire, platform_has_no_record, unsure_for_s=60)
    assert early.status is OperationStatus.PENDING
    # The window runs from when it was sent, not from the restart.
    clock.advance(56)
    late = await again.inquire(inquire, platform_has_no_record, unsure_for_s=60)
    assert late.status is OperationStatus.NOT_FOUND
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_an_operation_answered_as_made_is_kept_at_any_age_across_restarts(
    tmp_path: Path,
) -> None:
    path, clock = tmp_path / "open.jsonl", Clock()
    memo, journal = started(path, clock)

    async def made_not_shown() -> OperationResult:
        await memo.note_answered_made("rf-1")
        return OperationResult.pending("answered as made, not shown by the query yet")

    await memo.once("rf-1", REFUND, "pay-1", send=made_not_shown, amount=Money(3000, "CNY"))
    await unanswered(memo, "pay-2")
    journal.close()
    for _ in range(2):  # restarted twice, long after the window: kept through each compaction
        clock.advance(3600)
        clock.mono = 3.0
        memo, journal = started(path, clock)
        assert [(o.reference, o.answered_made, o.amount) for o in memo.open_operations()] == [
            ("rf-1", True, Money(3000, "CNY"))
        ]
        journal.close()
    memo, journal = started(path, clock)
    inquire = InquireRequest("rf-1", "m", REFUND, "pay-1", None)
    found = await memo.inquire(inquire, platform_has_no_record, unsure_for_s=60)
    assert (found.status, found.raw_code) == (OperationStatus.PENDING, "MADE_NOT_SHOWN")


def test_lines_written_before_answered_as_made_was_kept_still_read(tmp_path: Path) -> None:
    path, clock = tmp_path / "open.jsonl", Clock()
    path.write_text(
        f'{{"ref":"a","op":"REFUND","orig":"p","amt":1,"cur":"CNY","at":{clock.now}}}\n'
    )
    memo, _ = started(path, clock)
    (op,) = memo.open_operations()
    assert (op.reference, op.operation, op.answered_made) == ("a", REFUND, False)


async def test_operations_older_than_the_window_are_not_kept(tmp_path: Path) -> None:
    path, clock = tmp_path / "open.jsonl", Clock()
    memo, journal = started(path, clock)
    await unanswered(memo, "old")
    clock.advance(50)
    await unanswered(memo, "young")
    journal.close()
    clock.advance(20)
    again, _ = started(path, clock)
    assert [o.reference for o in again.open_operations()] == ["young"]
    assert "old" not in path.read_text()  # compacted at start


def test_a_torn_last_line_is_dropped_and_a_corrupt_one_skipped_and_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, clock = tmp_path / "open.jsonl", Clock()
    good = f'{{"ref":"a","op":"AUTHORIZE","orig":"a","at":{clock.now}}}\n'
    path.write_text(good + '{"ref":"b","op":"AUTH')
    memo, journal = started(path, clock)
    assert [o.reference for o in memo.open_operations()] == ["a"]
    journal.close()
    # A fragment in the middle (a worker before short writes were undone) does not stop the
    # start; what follows it is kept, and the error shows what was skipped.
    path.write_text('{"ref":"lost","op":"AUTH\n' + good)
    memo, _ = started(path, clock)
    assert [o.reference for o in memo.open_operations()] == ["a"]
    (error,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "line 1" in error and '{"ref":"lost","op":"AUTH' in error


def test_malformed_entries_are_skipped_and_shown_not_a_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, clock = tmp_path / "open.jsonl", Clock()
    now = clock.now
    malformed = [
        f'{{"ref":["x"],"op":"AUTHORIZE","orig":"x","at":{now}}}',
        f'{{"ref":"big","op":"AUTHORIZE","orig":"big","amt":1e400,"cur":"CNY","at":{now}}}',
        f'{{"ref":"half","op":"REFUND","orig":"p","amt":1.5,"cur":"CNY","at":{now}}}',
        '{"ref":"when","op":"AUTHORIZE","orig":"when","at":NaN}',
        f'{{"ref":"what","op":["AUTHORIZE"],"orig":"what","at":{now}}}',
        f'{{"ref":"who","op":"AUTHORIZE","orig":7,"at":{now}}}',
        '["ref","a"]',
        "[" * 100_000,
    ]
    good = f'{{"ref":"a","op":"AUTHORIZE","orig":"a","amt":1,"cur":"CNY","at":{now}}}'
    path.write_text("\n".join([*malformed, good]) + "\n")
    memo, _ = started(path, clock)
    assert [(o.reference, o.amount) for o in memo.open_operations()] == [("a", Money(1, "CNY"))]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert [f"line {n}," in e for n, e in enumerate(errors, start=1)] == [True] * len(malformed)


def test_one_worker_a_file(tmp_path: Path) -> None:
    path, clock = tmp_path / "open.jsonl", Clock()
    started(path, clock)
    with pytest.raises(OpenLogError, match="another worker"):
        started(path, clock)


async def test_the_lock_stays_with_the_worker_when_compaction_replaces_the_file(
    tmp_path: Path,
) -> None:
    # A second worker that opened the journal just before a compaction replaced it, and locked
    # it just after, held the lock of a file no longer used, and ran beside the first. The lock
    # is now on a file that compaction never replaces.
    path, clock = tmp_path / "open.jsonl", Clock()
    memo, journal = started(path, clock, slack_lines=2)
    before = path.stat().st_ino
    for i in range(20):
        await answered(memo, f"pay-{i}")
    assert path.stat().st_ino != before  # compacted: a new file
    lock = os.open(tmp_path / "open.jsonl.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        journal.close()
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when the worker stops
        with pytest.raises(OpenLogError, match="another worker"):
            started(path, clock)
    finally:
        os.close(lock)
    # A worker of the version before, which locks the journal itself, keeps one out too.
    older = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(older, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(OpenLogError, match="another worker"):
            started(path, clock)
    finally:
        os.close(older)
    started(path, clock)


async def test_the_file_is_compacted_while_running(tmp_path: Path) -> None:
    path, clock = tmp_path / "open.jsonl", Clock()
    memo, journal = started(path, clock, slack_lines=20)
    await unanswered(memo, "still-open")
    for i in range(200):
        await answered(memo, f"pay-{i}")
    assert len(path.read_text().splitlines()) <= 2 + 20 + 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    journal.close()
    again, _ = started(path, clock)
    assert [o.reference for o in again.open_operations()] == ["still-open"]


class Disk:
    """fsync(2) as the test lets it happen: while held, syncing a compaction's new file waits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.held = False
        self.compacting = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._go = threading.Event()

    def sync(self, fd: int) -> None:
        if self.held and os.fstat(fd).st_ino != os.stat(self.path).st_ino:
            self._loop.call_soon_threadsafe(self.compacting.set)
            self._go.wait(10)
        os.fsync(fd)

    def release(self) -> None:
        self.held = False
        self._go.set()


async def test_what_is_written_while_compacting_is_kept(tmp_path: Path) -> None:
    path, clock = tmp_path / "open.jsonl", Clock()
    disk = Disk(path)
    memo, journal = started(path, clock, slack_lines=0, sync=disk.sync)
    await unanswered(memo, "keep")
    disk.held = True

    async def busy() -> None:
        i = 0
        while not disk.compacting.is_set():  # payments, until one of them compacts the file
            await answered(memo, f"pay-{i}")
            i += 1

    payments = asyncio.create_task(busy())
    await asyncio.wait_for(disk.compacting.wait(), 10)  # a compaction writes its new file
    # Meanwhile: one open operation settles, and another one begins.
    assert memo.settle("keep", OperationResult.approved())
    memo.begin("during", AUTH, "during")
    disk.release()
    await payments
    journal.close()
    again, _ = started(path, clock)
    assert [o.reference for o in again.open_operations()] == ["during"]


async def test_the_amount_asked_is_kept_too(tmp_path: Path) -> None:
    path, clock = tmp_path / "open.jsonl", Clock()
    memo, journal = started(path, clock)

    async def lost() -> OperationResult:
        raise UpstreamTimeoutError("no answer")

    with pytest.raises(UpstreamTimeoutError):
        await memo.once("pay-1", AUTH, "pay-1", send=lost, amount=Money(8888, "CNY"))
    journal.close()
    again, _ = started(path, clock)
    assert [o.amount for o in again.open_operations()] == [Money(8888, "CNY")]


async def test_a_request_cancelled_while_compacting_leaves_payments_working(tmp_path: Path) -> None:
    path, clock = tmp_path / "open.jsonl", Clock()
    disk = Disk(path)
    memo, journal = started(path, clock, slack_lines=0, sync=disk.sync)
    disk.held = True
    for i in range(100):  # payments, until one of them compacts the file
        payment = asyncio.create_task(answered(memo, f"pay-{i}"))
        compacting = asyncio.create_task(disk.compacting.wait())
        await asyncio.wait([payment, compacting], return_when=asyncio.FIRST_COMPLETED)
        if disk.compacting.is_set():
            break
        compacting.cancel()
        await payment
    # Its deadline passes while the compaction waits for the disk.
    payment.cancel()
    with pytest.raises(asyncio.CancelledError):
        await payment
    disk.release()
    for i in range(20):  # before: UNAVAILABLE, "not sent", every one until a restart
        await answered(memo, f"after-{i}")
    assert len(path.read_text().splitlines()) < 10  # still compacted (they wrote 40 lines)
    await unanswered(memo, "sent-after")
    journal.close()
    again, _ = started(path, clock)
    assert "sent-after" in [o.reference for o in again.open_operations()]


async def test_a_compaction_that_fails_refuses_no_payment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, clock = tmp_path / "open.jsonl", Clock()

    def sync(fd: int) -> None:
        if os.fstat(fd).st_ino != os.stat(path).st_ino:  # a compaction's new file
            raise OSError(errno.EIO, "Input/output error")
        os.fsync(fd)

    memo, journal = started(path, clock, slack_lines=20, sync=sync)
    await unanswered(memo, "still-open")
    for i in range(100):  # the journal takes every note; only its size suffers
        await answered(memo, f"pay-{i}")
    assert any("could not compact" in r.getMessage() for r in caplog.records)
    journal.close()
    again, _ = started(path, clock)
    assert [o.reference for o in again.open_operations()] == ["still-open"]


async def test_a_write_the_disk_cuts_short_is_undone_and_its_request_not_sent(
    tmp_path: Path,
) -> None:
    path, clock = tmp_path / "open.jsonl", Clock()
    memo, journal = started(path, clock)
    await unanswered(memo, "pay-1")
    sent: list[str] = []

    async def send() -> OperationResult:
        sent.append("pay-2")
        return OperationResult.approved()

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 20, hard))  # disk full
    try:
        with pytest.raises(UpstreamUnavailableError, match="not sent"):
            await memo.once("pay-2", AUTH, "pay-2", send=send)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert sent == []
    await unanswered(memo, "pay-3")  # space freed: its note is not glued to a fragment
    journal.close()
    again, _ = started(path, clock)  # before: "line 2 is not an entry", the worker did not start
    assert [o.reference for o in again.open_operations()] == ["pay-1", "pay-3"]
