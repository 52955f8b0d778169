"""The open operations of a wallet adapter kept on disk, so that a restart still knows them.

An Inquire for an operation that was sent and not answered is PENDING, not NOT_FOUND, while the
platform may not show it yet (`memo.OperationMemo.inquire`). That needs the adapter to remember
what it sent; in memory alone a restarted worker forgot it, passed the platform's "no such
trade" on as NOT_FOUND, and the switch failed a payment the buyer could still be charged for.

The file is JSON lines, one a change, the last word about a reference winning:
`{"ref": R, "op": "AUTHORIZE", "orig": R0, "amt": 8888, "cur": "CNY", "at": 1767225600.0}`
(with the amount asked, when there is one) when an operation is about to leave (on disk,
fsync'd, before it is sent); the same with `"made": 1` once the platform has answered it as made
but its query does not show it yet (fsync'd too: such an operation is never NOT_FOUND, at any
age; a line without `made`, as older workers wrote them all, is one not answered as made); and
`{"ref": R, "done": 1}` once its outcome is known or it certainly never left (written, not
waited for: a lost one only leaves an operation looking open for one polling window after a
restart, which answers PENDING, never a wrong NOT_FOUND). It is read and compacted at start,
keeping what is younger than the window and what was answered as made, and compacted again
whenever it holds far more lines than open operations. Mode 0600; one worker a file: an
exclusive lock on `<file>.lock`, which compaction never replaces (a lock on the journal itself
moved to a new file at each compaction, and a second worker could take the old one's).

A line that cannot be read is skipped, with an error that shows it: a torn last line is a crash
mid-write, and one in the middle (written by a worker before short writes were undone) must not
keep the adapter from starting. The operation such a line noted, if any, is forgotten: it may be
answered NOT_FOUND too early, hence the error.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from adapters.sdk.types import Money, OperationType
from adapters.walletkit.memo import OpenOperation

log = logging.getLogger(__name__)

# Compact once the file holds this many lines more than twice the open operations.
SLACK_LINES = 4096


class OpenLogError(ValueError):
    """The file cannot be used: another worker holds it."""


class OpenLog:
    """An append-only file of operations sent and not answered yet, bounded by compaction."""

    def __init__(
        self,
        path: Path,
        *,
        keep_for_s: float,
        slack_lines: int = SLACK_LINES,
        sync: Callable[[int], None] = os.fsync,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._tmp_path = path.with_name(path.name + ".tmp")
        self._lock_path = path.with_name(path.name + ".lock")
        self._keep_for_s = keep_for_s
        self._wall = wall
        self._monotonic = monotonic
        self._fd = -1
        self._lock_fd = -1
        self._torn = False  # a fragment could not be undone: the next line starts a new one
        self._lines = 0  # lines in the file now
        self._written = 0  # generation of the last write
        self._synced = 0  # generation known to be on disk
        self._disk = asyncio.Lock()  # one fsync or compaction at a time
        self._live: Callable[[], Iterable[OpenOperation]] = tuple
        self._capture: list[bytes] | None = None  # lines written while compacting
        self._slack = slack_lines
        self._sync = sync  # fsync(2), run in a thread (a test may hold it)
        self._check_at = slack_lines  # look at compacting once the file has this many lines

    def open(self, live: Callable[[], Iterable[OpenOperation]]) -> list[OpenOperation]:
        """Lock and read the file: the operations still open and younger than the window, or
        answered as made (their `since` on this process's monotonic clock). The file is
        rewritten with just those. `live` tells the open operations at any later time (for
        compaction)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            self._lock_fd = _locked(self._lock_path)
            # The journal too, as workers before the lock file locked it (a deploy overlaps).
            self._fd = _locked(self.path, os.O_APPEND)
        except BlockingIOError:
            self.close()
            raise OpenLogError(f"{self.path}: in use by another worker") from None
        except BaseException:
            self.close()
            raise
        try:
            found = self._read()
            self._rewrite(self._entries(found))
        except BaseException:
            self.close()
            raise
        self._live = live
        return found

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # also releases the lock
            self._lock_fd = -1

    def opened(self, op: OpenOperation) -> None:
        """Note an operation about to leave; `durable()` returns once the note is on disk."""
        self._write(self._entry(op))

    def closed(self, reference: str) -> None:
        """Note that an operation is no longer open. Not waited for (see the module's text)."""
        try:
            self._write({"ref": reference, "done": 1})
        except OSError as exc:
            log.warning("could not note a settled operation", extra={"why": str(exc)})

    async def durable(self) -> None:
        """Return once everything written so far is on disk; compact if the file grew large."""
        # Its own task, which the caller's cancel (a request's deadline) does not cut short: a
        # compaction cut while it waited for the disk left its new file open and locked, and
        # every later one failed, refusing every payment until a restart.
        work = asyncio.ensure_future(self._to_disk(self._written))
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            work.add_done_callback(_log_failure)
            raise

    async def _to_disk(self, mine: int) -> None:
        async with self._disk:
            if self._synced < mine:
                target = self._written
                await asyncio.to_thread(self._sync, self._fd)
                self._synced = target
            if self._lines > self._check_at:
                live = list(self._live())
                if self._lines > 2 * len(live) + self._slack:
                    try:
                        await self._compact(live)
                    except OSError as exc:
                        # What was written is on disk (above): only the file's size suffers,
                        # which is no reason to refuse a payment. Tried again a slack later.
                        self._check_at = self._lines + self._slack
                        log.error(
                            "could not compact %s: tried again after %d more lines",
                            self.path,
                            self._slack,
                            extra={"why": exc.strerror or str(exc)},
                        )
                        return
                self._check_at = 2 * len(live) + self._slack

    def _write(self, entry: dict[str, Any]) -> None:
        if self._fd < 0:
            raise OSError(f"{self.path} is not open")
        line = _line(entry)
        if self._torn:
            line = b"\n" + line
        # One small write(2) to an O_APPEND file: the page cache takes it without blocking.
        written = os.write(self._fd, line)
        if written < len(line):
            self._undo(written)
            raise OSError(errno.ENOSPC, f"only {written} of {len(line)} bytes written: disk full?")
        self._torn = False
        self._written += 1
        self._lines += 1
        if self._capture is not None:
            self._capture.append(line)

    def _undo(self, written: int) -> None:
        """Cut off the fragment a short write left, so that the next line is not glued to it."""
        try:
            os.ftruncate(self._fd, os.fstat(self._fd).st_size - written)
        except OSError as exc:
            self._torn = True
            log.error(
                "%s: could not cut off a partly written line; it will be skipped at start",
                self.path,
                extra={"why": exc.strerror or str(exc)},
            )

    def _at(self, since: float) -> float:
        """The wall-clock time of a monotonic one (monotonic time does not survive a restart)."""
        return round(self._wall() - (self._monotonic() - since), 3)

    def _entry(self, op: OpenOperation) -> dict[str, Any]:
        at = self._at(op.since)
        entry: dict[str, Any] = {
            "ref": op.reference,
            "op": op.operation.name,
            "orig": op.original_reference,
        }
        if op.amount is not None:
            entry |= {"amt": op.amount.amount_minor, "cur": op.amount.currency}
        if op.answered_made:
            entry["made"] = 1
        return entry | {"at": at}

    def _entries(self, ops: Iterable[OpenOperation]) -> list[bytes]:
        return [_line(self._entry(op)) for op in ops]

    def _read(self) -> list[OpenOperation]:
        lines = self.path.read_bytes().split(b"\n")
        state: dict[str, OpenOperation] = {}
        wall, mono = self._wall(), self._monotonic()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                ref, entry = _parse(line)
            except ValueError as exc:
                if number == len(lines):  # no newline after it
                    log.warning("%s: dropping a torn last line (a crash mid-write)", self.path)
                    continue
                log.error(
                    "%s: skipping line %d, which is not an entry (%s): the operation it noted, "
                    "if any, is forgotten and may be answered NOT_FOUND too early: %r",
                    self.path,
                    number,
                    exc,
                    line[:500],
                )
                continue
            state.pop(ref, None)  # keep the order of the latest word
            if entry is None:
                continue
            op, original, at, amount, made = entry
            age = max(0.0, wall - at)  # a clock set back counts as just sent: still unsure
            state[ref] = OpenOperation(ref, op, original, mono - age, amount, made)
        # One the platform answered as made is kept at any age: money may have moved.
        return [v for v in state.values() if v.answered_made or mono - v.since < self._keep_for_s]

    def _rewrite(self, lines: list[bytes]) -> None:
        """Replace the file by `lines` (at start, before anything else is written)."""
        tmp = self._tmp(lines)
        try:
            os.fsync(tmp)
            self._swap(tmp, len(lines))
        except BaseException:
            os.close(tmp)
            raise
        self._sync_dir()

    async def _compact(self, live: list[OpenOperation]) -> None:
        """Rewrite the file as `live`, the open operations now; lines written meanwhile (by
        coroutines that do not wait for this) are copied after them. Holds `_disk`."""
        self._capture = []
        try:
            lines = self._entries(live)
            tmp = self._tmp(lines)
            try:
                await asyncio.to_thread(self._sync, tmp)
                captured = self._capture
                _write_all(tmp, b"".join(captured))
                self._swap(tmp, len(lines) + len(captured))
            except BaseException:
                os.close(tmp)
                raise
        finally:
            self._capture = None
        # What was written before is in `lines`, on disk; what came meanwhile is not yet.
        self._synced = self._written - len(captured)
        await asyncio.to_thread(self._sync_dir)
        log.info("compacted %s to %d open operations", self.path, len(lines))

    def _tmp(self, lines: list[bytes]) -> int:
        """A new file beside the journal holding `lines`, locked: its descriptor."""
        fd = os.open(self._tmp_path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # a stale tmp file may have had another mode
            # Locked, as workers before the lock file locked the journal (see `open`).
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _write_all(fd, b"".join(lines))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _swap(self, tmp: int, lines: int) -> None:
        if self._fd < 0:
            raise OSError(errno.EBADF, f"{self.path} was closed")
        os.replace(self._tmp_path, self.path)
        os.close(self._fd)
        self._fd = tmp
        self._lines = lines

    def _sync_dir(self) -> None:
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _line(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, separators=(",", ":")).encode() + b"\n"


_Fields = tuple[OperationType, str, float, Money | None, bool]


def _parse(line: bytes) -> tuple[str, _Fields | None]:
    """The reference a line is about and what it says (None: no longer open); ValueError, saying
    why, for anything else."""
    try:
        entry = json.loads(line)
    except RecursionError:
        raise ValueError("nested too deeply") from None  # JSONDecodeError is a ValueError
    if not isinstance(entry, dict):
        raise ValueError("not an object")
    ref = _text(entry, "ref")
    if entry.get("done"):
        return ref, None
    name = _text(entry, "op")
    if name not in OperationType.__members__:
        raise ValueError(f"op: no operation {name!r}")
    at = entry.get("at")
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        raise ValueError("at: not a time")
    amount = None
    if "amt" in entry:
        minor = entry["amt"]
        if isinstance(minor, bool) or not isinstance(minor, int):
            raise ValueError("amt: not a whole number of minor units")
        amount = Money(minor, _text(entry, "cur"))
    return ref, (
        OperationType[name],
        _text(entry, "orig"),
        float(at),
        amount,
        bool(entry.get("made")),
    )


def _text(entry: dict[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key}: not a string")
    return value


def _write_all(fd: int, data: bytes) -> None:
    """Write `data` to a file not in use yet: a short write is the disk's refusal, an OSError."""
    while data:
        written = os.write(fd, data)  # short on a full disk: the next write says why
        if written == 0:
            raise OSError(errno.ENOSPC, "nothing written: disk full?")
        data = data[written:]


def _locked(path: Path, flags: int = 0) -> int:
    """`path` opened (made, mode 0600) and exclusively locked; BlockingIOError when held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _log_failure(work: asyncio.Future[None]) -> None:
    """Say why disk work failed that its caller, cancelled, no longer waits for."""
    if not work.cancelled() and (exc := work.exception()) is not None:
        log.warning("journal work failed after its request was cancelled", exc_info=exc)
