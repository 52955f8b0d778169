"""Starting adapter workers for contract tests: real processes run by `python -m switch`."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass

from adapters.sdk.conformance import Check, ConformanceProfile, WorkerProcess, applicable
from tests.support import REPO


def adapter_command(name: str, *flags: str) -> list[str]:
    """`payswitch adapter NAME FLAGS...` as a command line; WorkerProcess adds --listen."""
    return [sys.executable, "-m", "switch", "adapter", name, *flags]


def adapter_process(name: str, *flags: str) -> WorkerProcess:
    """A worker process for the registered channel `name`, run from the repository root."""
    return WorkerProcess(adapter_command(name, *flags), cwd=str(REPO))


@dataclass(frozen=True, slots=True)
class Served:
    """A worker under test and the profile to check it with, its upstream counter's
    `upstream_at` set to where this run's simulator counts."""

    target: str
    profile: ConformanceProfile


def served(target: str, profile: ConformanceProfile, upstream_at: str) -> Served:
    return Served(target, dataclasses.replace(profile, upstream_at=upstream_at))


def counted_checks(profile: ConformanceProfile) -> list[Check]:
    """The checks `profile` runs once a fixture tells it where the upstream counts."""
    return applicable(dataclasses.replace(profile, upstream_at="(set by the fixture)"))
