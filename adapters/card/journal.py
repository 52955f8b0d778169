"""An append-only JSON-lines file with group commit: the card channel's durable memory."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Entry = dict[str, Any]
# Owner read and write only: the journal holds what the card channel sent for each payment.
_MODE = 0o600


class JournalError(ValueError):
    """The journal file cannot be read back; the text names the file and line."""


class Journal:
    """Entries are appended as lines; a reader replays them in order, the last word winning.

    `append` returns once the lines are on disk (fsync), but many appends waiting at the same
    time share one fsync, so durability costs one disk flush per burst, not per payment.
    """

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = path
        self._fsync = fsync
        self._fd = -1
        self._written = 0  # generation of the last write
        self._synced = 0  # generation known to be on disk
        self._sync_task: asyncio.Task[None] | None = None

    def load(self) -> list[Entry]:
        """Every entry in the file, in order. A torn last line (a crash mid-write) is dropped."""
        if not self.path.exists():
            return []
        lines = self.path.read_bytes().split(b"\n")
        entries: list[Entry] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError as exc:
                if number == len(lines):
                    log.warning("journal %s: dropping a torn last line", self.path)
                    continue
                raise JournalError(f"{self.path}: line {number} is not JSON") from exc
            if not isinstance(entry, dict):
                raise JournalError(f"{self.path}: line {number} is not an object")
            entries.append(entry)
        return entries

    def rewrite(self, entries: Iterable[Entry]) -> None:
        """Replace the file by `entries` atomically (compaction at start, before `open`)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        # 0600 like the journal `open` creates: the rename makes this file the journal. fchmod
        # too, for a .tmp an earlier crash left behind with another mode.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _MODE)
        os.fchmod(fd, _MODE)
        with os.fdopen(fd, "wb") as f:
            for entry in entries:
                f.write(_line(entry))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._sync_dir()

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _MODE)

    async def close(self) -> None:
        if self._sync_task is not None:
            await asyncio.shield(self._sync_task)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    async def append(self, *entries: Entry) -> None:
        """Append entries and return once they are durable."""
        if self._fd < 0:
            raise RuntimeError("journal is not open")
        data = b"".join(_line(e) for e in entries)
        # One write(2) of a few hundred bytes to an O_APPEND file: the page cache takes it
        # without blocking in practice; only the fsync is sent to a thread.
        os.write(self._fd, data)
        self._written += 1
        if not self._fsync:
            return
        mine = self._written
        while self._synced < mine:
            if self._sync_task is None:
                self._sync_task = asyncio.create_task(self._sync())
            await asyncio.shield(self._sync_task)

    async def _sync(self) -> None:
        target = self._written
        try:
            await asyncio.to_thread(os.fsync, self._fd)
            self._synced = target
        finally:
            self._sync_task = None

    def _sync_dir(self) -> None:
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _line(entry: Entry) -> bytes:
    return json.dumps(entry, separators=(",", ":"), sort_keys=True).encode() + b"\n"
