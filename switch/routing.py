"""Choosing channels: capabilities that match, by priority, weighted among equals, healthy only."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from switch.config import ChannelConfig
from switch.errors import ChannelUnavailable, NoRoute
from switch.model import MethodType
from switch.pool import Capabilities


class Candidate(Protocol):
    """What routing needs of a channel (switch.pool.ChannelClient in production)."""

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> ChannelConfig: ...

    @property
    def capabilities(self) -> Capabilities | None: ...

    def available(self) -> bool: ...


C = TypeVar("C", bound=Candidate)


@dataclass(frozen=True, slots=True)
class RouteRequest:
    method: MethodType
    currency: str
    amount: int
    manual_capture: bool


class Router(Generic[C]):
    """Orders candidate channels for a payment. Lower priority numbers are tried first."""

    def __init__(self, channels: Iterable[C], *, rng: random.Random | None = None) -> None:
        self._channels = list(channels)
        self._rng = rng or random.Random()

    def candidates(self, req: RouteRequest) -> list[C]:
        """Matching, available channels in the order to try them; NoRoute or ChannelUnavailable."""
        matching = [
            c
            for c in self._channels
            if c.capabilities is not None
            and c.capabilities.accepts(req.method, req.currency, req.amount, req.manual_capture)
        ]
        if not matching:
            if any(c.capabilities is None for c in self._channels):
                raise ChannelUnavailable(
                    "no channel that could take this payment has said what it supports yet; "
                    "nothing was sent"
                )
            raise NoRoute(
                f"no channel takes {req.method.name} payments of {req.amount} {req.currency}"
                + (" with manual capture" if req.manual_capture else "")
            )
        available = [c for c in matching if c.available()]
        if not available:
            names = ", ".join(c.name for c in matching)
            raise ChannelUnavailable(
                f"every channel that could take this payment is down ({names}); nothing was sent"
            )
        # Efraimidis-Spirakis: sorting by u ** (1 / weight) is a weighted random permutation.
        keyed = [
            (c.config.priority, -(self._rng.random() ** (1.0 / c.config.weight)), i, c)
            for i, c in enumerate(available)
        ]
        keyed.sort()
        return [c for *_, c in keyed]
