"""Transport to the upstream. Here it calls the in-memory PretendUpstream; yours speaks HTTP or TCP.

Whatever the transport, a call ends in one of three ways, and the adapter relies on that:
an answer; `UpstreamUnavailableError` when the request was certainly not sent (connection
refused, circuit open), so the switch may try another channel; `UpstreamTimeoutError` when it
may have been sent but no trustworthy answer came, so the outcome is unknown.
"""

from __future__ import annotations

import asyncio

from adapters.sdk.errors import UpstreamTimeoutError, UpstreamUnavailableError
from adapters.template.simulator import LOST_ANSWER, PretendUpstream


class UpstreamClient:
    def __init__(self, upstream: PretendUpstream | None, *, timeout_s: float) -> None:
        self._upstream = upstream
        self._timeout_s = timeout_s

    async def send(self, message: dict[str, str]) -> dict[str, str]:
        if self._upstream is None:
            raise UpstreamUnavailableError("not connected to the upstream")
        answer = self._upstream.handle(message)
        if LOST_ANSWER in answer:  # the upstream acted, but its answer never arrives
            await asyncio.sleep(self._timeout_s)
            raise UpstreamTimeoutError(f"no answer within {self._timeout_s} s")
        return answer
