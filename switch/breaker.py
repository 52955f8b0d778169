"""A circuit breaker per channel endpoint: closed, open after consecutive failures, half-open.

CLOSED lets every call through and counts consecutive failures (a call that was not sent, or
whose answer never came); `failures` in a row open it. OPEN refuses calls until `cooldown_ms`
has passed; then it is HALF_OPEN and lets `half_open_trials` calls through at a time. A trial
that completes closes it; a trial that fails opens it again for another cool-down. Every
transition goes to the `on_change` callback (the pool logs and counts it).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import Final

from switch.routeconfig import BreakerConfig


class BreakerState(enum.Enum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


# Module constants for the checks made on every call (ready, acquire, success): reading a
# member from its class goes through EnumType.__getattr__ on Python 3.11 (see switch/model.py).
CLOSED: Final = BreakerState.CLOSED
HALF_OPEN: Final = BreakerState.HALF_OPEN
OPEN: Final = BreakerState.OPEN

OnChange = Callable[[BreakerState, BreakerState], None]


class Breaker:
    """The state of one endpoint's breaker; single-threaded (the event loop's)."""

    __slots__ = ("_cfg", "_clock", "_failures", "_on_change", "_opened_at", "_trials", "state")

    def __init__(
        self,
        config: BreakerConfig,
        *,
        on_change: OnChange | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cfg = config
        self._clock = clock
        self._on_change = on_change
        self.state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trials = 0

    def reconfigure(self, config: BreakerConfig) -> None:
        """New thresholds (a config reload); the current state and counts stay."""
        self._cfg = config

    def ready(self) -> bool:
        """Whether a call could go now (changes nothing)."""
        if self.state is CLOSED:
            return True
        if self.state is OPEN:
            return self._cooled()
        return self._trials < self._cfg.half_open_trials

    def acquire(self) -> bool:
        """Take the right to make one call now; a half-open breaker hands out its trials."""
        if self.state is CLOSED:
            return True
        if self.state is OPEN:
            if not self._cooled():
                return False
            self._move(HALF_OPEN)
        if self._trials >= self._cfg.half_open_trials:
            return False
        self._trials += 1
        return True

    def success(self) -> None:
        """A call completed (approved, declined or an honest PENDING): the endpoint works."""
        self._failures = 0
        if self.state is not CLOSED:
            self._trials = 0
            self._move(CLOSED)

    def failure(self) -> None:
        """A call was not sent or its answer never came."""
        if self.state is HALF_OPEN:
            self._open()
            return
        self._failures += 1
        if self.state is CLOSED and self._cfg.failures and self._failures >= self._cfg.failures:
            self._open()

    def remaining_s(self) -> float:
        """Seconds left of the cool-down of an open breaker (0 otherwise)."""
        if self.state is not OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._cfg.cooldown_ms / 1000 - self._clock())

    def _cooled(self) -> bool:
        return self._clock() - self._opened_at >= self._cfg.cooldown_ms / 1000

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._trials = 0
        self._failures = 0
        self._move(OPEN)

    def _move(self, to: BreakerState) -> None:
        was, self.state = self.state, to
        if self._on_change is not None and was is not to:
            self._on_change(was, to)
