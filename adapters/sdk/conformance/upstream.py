"""How the conformance suite learns what a channel's upstream carried out: `UpstreamCounter`.

A double charge does not show in the worker's answers: an adapter that sends a repeated
reference upstream again (a retry after a timeout, a replay under a fresh STAN or order
number) can answer every repeat with the first result. Only the upstream knows it charged
twice, so each channel's profile names a counter that asks its simulator, and
`replays_charged_once_upstream` compares the counts before and after a burst of repeats.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Protocol

from adapters.sdk.types import OperationType


class UpstreamCounter(Protocol):
    """Counts the operations the upstream has carried out, in all, since it started.

    The suite reads a count just before and just after one check's burst of repeats, so the
    upstream must serve only the worker under test while the suite runs (it runs one check at
    a time). Counting them all, whatever the reference, is what catches a repeat sent again
    under another upstream key (a new STAN, a new out_trade_no): counted per key it would be
    one each time.
    """

    async def carried_out(self, operation: OperationType) -> int:
        """How many authorizations (charges), captures or refunds the upstream has taken on
        as new, whatever their outcome; a repeat it recognised as one (the same order number,
        the same STAN) is not counted, since it charged nothing again."""
        ...


class JournalCounter:
    """Counts the lines of a JSON-lines journal whose `op` names the operation.

    Each line is one operation the upstream took on: `{"op": "authorize", ...}`, with `op` the
    operation's name in lower case; a line with `"replay": true` is a repeat it recognised
    (the sandbox's `--journal` writes those too) and is not counted. A missing file is zero.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    async def carried_out(self, operation: OperationType) -> int:
        return await asyncio.to_thread(self._count, operation.name.lower())

    def _count(self, op: str) -> int:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return 0
        count = 0
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line being written right now
            if isinstance(entry, dict) and entry.get("op") == op and not entry.get("replay"):
                count += 1
        return count
