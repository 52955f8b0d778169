"""The WeChat Pay worker, run as `payswitch adapter wechat` with its simulator, passes the suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.sdk.conformance import Check
from adapters.wechat.conformance import PROFILE
from tests.contract.workers import Served, adapter_process, counted_checks, served
from tests.integration.wechat.wechatkit import APPID, MCHID, KeySet, SimulatorProcess
from tests.support import free_port


@pytest.fixture(scope="module")
def wechat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    keys = KeySet.create(tmp_path_factory.mktemp("wechat-conformance"))
    simulator = SimulatorProcess(keys)
    simulator.start()
    try:
        with adapter_process(
            "wechat",
            "--api-base", simulator.api_base,
            "--mchid", MCHID,
            "--appid", APPID,
            "--merchant-private-key", keys.path("merchant_private"),
            "--platform-public-key", keys.path("platform_public"),
            "--apiv3-key", keys.path("apiv3.key"),
            "--notify-listen", f"127.0.0.1:{free_port()}",
            "--poll-interval-s", "0.3",
        ) as worker:  # fmt: skip
            yield served(worker.target, PROFILE, f"http://127.0.0.1:{simulator.port}")
    finally:
        simulator.stop()


@pytest.mark.parametrize("check", counted_checks(PROFILE), ids=str)
async def test_wechat_conforms(check: Check, wechat: Served) -> None:
    await check(wechat.target, wechat.profile)
