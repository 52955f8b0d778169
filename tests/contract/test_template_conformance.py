"""The template channel, run as its own process (it is registered nowhere), passes the suite."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from adapters.sdk.conformance import Check, WorkerProcess, applicable
from adapters.template.conformance import PROFILE
from tests.support import REPO


@pytest.fixture(scope="module")
def template() -> Iterator[str]:
    command = [sys.executable, "-m", "adapters.template.worker", "--timeout-ms", "300"]
    with WorkerProcess(command, cwd=str(REPO)) as worker:
        yield worker.target


@pytest.mark.parametrize("check", applicable(PROFILE), ids=str)
async def test_template_conforms(check: Check, template: str) -> None:
    await check(template, PROFILE)
