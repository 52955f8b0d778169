"""The template channel, run as its own process (it is registered nowhere), passes the suite."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from adapters.sdk.conformance import Check, WorkerProcess
from adapters.template.conformance import PROFILE
from tests.contract.workers import Served, counted_checks, served
from tests.support import REPO


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    journal = str(tmp_path_factory.mktemp("template") / "upstream.jsonl")
    command = [sys.executable, "-m", "adapters.template.worker", "--timeout-ms", "300"]
    command += ["--upstream-journal", journal]
    with WorkerProcess(command, cwd=str(REPO)) as worker:
        yield served(worker.target, PROFILE, journal)


@pytest.mark.parametrize("check", counted_checks(PROFILE), ids=str)
async def test_template_conforms(check: Check, template: Served) -> None:
    await check(template.target, template.profile)
