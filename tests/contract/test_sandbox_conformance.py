"""The sandbox worker, as a real process, passes every conformance check.

This file is the pattern for a channel's contract test: start its worker (and its upstream
simulator) once per module, then run each applicable check as its own test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.sandbox.conformance import PROFILE
from adapters.sdk.conformance import Check, applicable
from tests.contract.workers import adapter_process

# The same channel with every optional capability switched off and amount limits set, so the
# refusal paths of `capabilities_honoured` run too.
NARROW = (
    "--name", "sandbox_narrow", "--methods", "card", "--currencies", "USD,EUR",
    "--min-amount", "100", "--max-amount", "5000", "--no-partial-capture", "--no-void",
    "--no-partial-refund",
)  # fmt: skip


@pytest.fixture(scope="module")
def sandbox() -> Iterator[str]:
    with adapter_process("sandbox", "--pending-resolve-ms", "100", "--hang-ms", "5000") as worker:
        yield worker.target


@pytest.fixture(scope="module")
def narrow_sandbox() -> Iterator[str]:
    with adapter_process("sandbox", *NARROW) as worker:
        yield worker.target


@pytest.mark.parametrize("check", applicable(PROFILE), ids=str)
async def test_sandbox_conforms(check: Check, sandbox: str) -> None:
    await check(sandbox, PROFILE)


@pytest.mark.parametrize(
    "check",
    [c for c in applicable(PROFILE) if c.name.startswith(("capabilities", "supported", "same"))],
    ids=str,
)
async def test_narrow_sandbox_conforms(check: Check, narrow_sandbox: str) -> None:
    await check(narrow_sandbox, PROFILE)
