"""The Alipay worker, run as `payswitch adapter alipay` against its simulator, passes the suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.alipay.conformance import PROFILE
from adapters.sdk.conformance import Check
from tests.contract.workers import Served, adapter_process, counted_checks, served
from tests.integration.alipay.alipaykit import APP_ID, KeySet, SimulatorProcess


@pytest.fixture(scope="module")
def alipay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    keys = KeySet.create(tmp_path_factory.mktemp("alipay-conformance"))
    simulator = SimulatorProcess(keys)
    simulator.start()
    try:
        with adapter_process(
            "alipay",
            "--gateway", simulator.gateway,
            "--app-id", APP_ID,
            "--app-private-key", keys.path("app_private"),
            "--platform-public-key", keys.path("platform_public"),
            "--poll-interval-s", "0.3",
        ) as worker:  # fmt: skip
            yield served(worker.target, PROFILE, f"http://127.0.0.1:{simulator.port}")
    finally:
        simulator.stop()


@pytest.mark.parametrize("check", counted_checks(PROFILE), ids=str)
async def test_alipay_conforms(check: Check, alipay: Served) -> None:
    await check(alipay.target, alipay.profile)
