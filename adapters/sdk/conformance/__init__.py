"""The conformance suite: checks any adapter worker can be run against, by command or pytest.

Each check is a plain async function of a worker's address and a `ConformanceProfile` that
raises `ConformanceError` when the worker breaks the Channel contract. `CHECKS` lists them in
order; `applicable(profile)` leaves out those the profile has no instrument for. Run them with
`payswitch conformance --target ADDR --profile MODULE:ATTR [--upstream WHERE]`, or from pytest:

    @pytest.mark.parametrize("check", applicable(PROFILE), ids=str)
    async def test_conforms(check: Check, target: str) -> None:
        await check(target, PROFILE)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from adapters.sdk.conformance.answers import (
    check_approval_answered,
    check_bad_input_refused,
    check_capabilities_described,
    check_decline_is_an_answer,
    check_exchange_socket_answers,
    check_health_served,
    check_unknown_reference_not_found,
)
from adapters.sdk.conformance.client import ChannelClient, ConformanceError, Refused
from adapters.sdk.conformance.flows import (
    check_abandoned_call_is_inquirable,
    check_capabilities_honoured,
    check_replays_charged_once_upstream,
    check_same_reference_not_charged_twice,
    check_supported_operations_work,
    check_unknown_outcome_announced,
    check_unknown_outcome_resolves,
)
from adapters.sdk.conformance.process import WorkerProcess, free_port, wait_serving
from adapters.sdk.conformance.profile import ConformanceProfile
from adapters.sdk.conformance.upstream import JournalCounter, UpstreamCounter

CheckFunction = Callable[[str, ConformanceProfile], Awaitable[None]]


def _always(profile: ConformanceProfile) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Check:
    """One named check, and whether a profile gives it what it needs."""

    name: str
    run: CheckFunction
    applies: Callable[[ConformanceProfile], bool] = _always

    def __str__(self) -> str:
        return self.name

    @property
    def doc(self) -> str:
        return (self.run.__doc__ or "").strip()

    async def __call__(self, target: str, profile: ConformanceProfile) -> None:
        await self.run(target, profile)


CHECKS: tuple[Check, ...] = (
    Check("health_served", check_health_served),
    Check("capabilities_described", check_capabilities_described),
    Check("capabilities_honoured", check_capabilities_honoured),
    Check("approval_answered", check_approval_answered),
    Check("decline_is_an_answer", check_decline_is_an_answer),
    Check("same_reference_not_charged_twice", check_same_reference_not_charged_twice),
    Check(
        "replays_charged_once_upstream",
        check_replays_charged_once_upstream,
        lambda p: p.upstream() is not None,
    ),
    Check("supported_operations_work", check_supported_operations_work),
    Check(
        "unknown_outcome_resolves",
        check_unknown_outcome_resolves,
        lambda p: p.unknown_outcome is not None,
    ),
    Check(
        "unknown_outcome_announced",
        check_unknown_outcome_announced,
        lambda p: p.unknown_outcome is not None and p.announces_events,
    ),
    Check(
        "abandoned_call_is_inquirable",
        check_abandoned_call_is_inquirable,
        lambda p: p.hanging is not None,
    ),
    Check("bad_input_refused", check_bad_input_refused),
    Check("unknown_reference_not_found", check_unknown_reference_not_found),
    Check("exchange_socket_answers", check_exchange_socket_answers),
)


def applicable(profile: ConformanceProfile) -> list[Check]:
    """The checks `profile` has instruments for, in order."""
    return [c for c in CHECKS if c.applies(profile)]


__all__ = [
    "CHECKS",
    "ChannelClient",
    "Check",
    "ConformanceError",
    "ConformanceProfile",
    "JournalCounter",
    "Refused",
    "UpstreamCounter",
    "WorkerProcess",
    "applicable",
    "free_port",
    "wait_serving",
]
