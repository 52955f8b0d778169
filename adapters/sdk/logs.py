"""Structured worker logs: one JSON object per line on stderr, long digit runs masked."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import TextIO

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# A card number or a wallet payment code that slipped into a message (an adapter's exception
# text, an upstream's error body) must not reach the log: keep at most BIN and last four.
_LONG_DIGITS = re.compile(r"(?<!\d)(\d{6})(\d{2,14})(\d{4})(?!\d)")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def mask_digits(text: str) -> str:
    """`text` with every run of 12 to 24 digits shown as its first six and last four."""
    return _LONG_DIGITS.sub(lambda m: m[1] + "*" * len(m[2]) + m[3], text)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line with its `extra` fields, masking long digit runs."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return mask_digits(json.dumps(out, default=str))


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send every log record to `stream` (stderr by default) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
