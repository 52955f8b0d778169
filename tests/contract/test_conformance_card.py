"""The card worker, a real process against the simulator process, passes the conformance suite."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.card.conformance import PROFILE
from adapters.sdk.conformance import Check
from tests.contract.workers import Served, adapter_process, counted_checks, served
from tests.support import free_port, spawn, stop_process, wait_for_port


@pytest.fixture(scope="module")
def card_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder: Path = tmp_path_factory.mktemp("card-conformance")
    port = free_port()
    args = ["-m", "adapters.card.simulator", "--listen", f"127.0.0.1:{port}"]
    args += ["--state", str(folder / "host.jsonl"), "--slow-seconds", "2", "--log-level", "WARNING"]
    simulator = spawn(args, stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc=simulator)
        flags = ["--acquirer", f"127.0.0.1:{port}", "--terminal-id", "CONF0001"]
        flags += ["--merchant-id", "CONFORMANCE0001", "--saf-file", str(folder / "saf.jsonl")]
        flags += ["--response-timeout", "1", "--saf-retry-base", "0.1", "--saf-retry-cap", "0.5"]
        flags += ["--log-level", "WARNING"]
        with adapter_process("card", *flags) as worker:
            yield served(worker.target, PROFILE, str(folder / "host.jsonl"))
    finally:
        stop_process(simulator)


@pytest.mark.parametrize("check", counted_checks(PROFILE), ids=str)
async def test_card_conforms(check: Check, card_worker: Served) -> None:
    await check(card_worker.target, card_worker.profile)
