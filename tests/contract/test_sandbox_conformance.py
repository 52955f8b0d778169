"""The sandbox worker, as a real process, passes every conformance check.

This file is the pattern for a channel's contract test: start its worker (and its upstream
simulator) once per module, then run each applicable check as its own test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.sandbox.conformance import PROFILE
from adapters.sdk.conformance import Check
from tests.contract.workers import Served, adapter_process, counted_checks, served

# The same channel with every optional capability switched off and amount limits set, so the
# refusal paths of `capabilities_honoured` run too.
NARROW = (
    "--name", "sandbox_narrow", "--methods", "card", "--currencies", "USD,EUR",
    "--min-amount", "100", "--max-amount", "5000", "--no-partial-capture", "--no-void",
    "--no-partial-refund",
)  # fmt: skip


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    journal = str(tmp_path_factory.mktemp("sandbox") / "journal.jsonl")
    flags = ("--pending-resolve-ms", "100", "--hang-ms", "5000", "--journal", journal)
    with adapter_process("sandbox", *flags) as worker:
        yield served(worker.target, PROFILE, journal)


@pytest.fixture(scope="module")
def narrow_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    journal = str(tmp_path_factory.mktemp("narrow") / "journal.jsonl")
    with adapter_process("sandbox", *NARROW, "--journal", journal) as worker:
        yield served(worker.target, PROFILE, journal)


@pytest.mark.parametrize("check", counted_checks(PROFILE), ids=str)
async def test_sandbox_conforms(check: Check, sandbox: Served) -> None:
    await check(sandbox.target, sandbox.profile)


@pytest.mark.parametrize(
    "check",
    [
        c
        for c in counted_checks(PROFILE)
        if c.name.startswith(("capabilities", "supported", "same", "replays"))
    ],
    ids=str,
)
async def test_narrow_sandbox_conforms(check: Check, narrow_sandbox: Served) -> None:
    await check(narrow_sandbox.target, narrow_sandbox.profile)
