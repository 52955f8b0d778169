"""WeChat Pay channel fixtures: fresh keys, a real simulator process, adapters over real HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from adapters.wechat.adapter import WechatPayAdapter
from tests.integration.alipay.alipaykit import Events, adapter_pool
from tests.integration.wechat.wechatkit import KeySet, SimulatorProcess, settings

AdapterFactory = Callable[..., Awaitable[tuple[WechatPayAdapter, Events]]]


@pytest.fixture(scope="module")
def keyset(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    return KeySet.create(tmp_path_factory.mktemp("wechat-keys"))


@pytest.fixture(scope="module")
def simulator(keyset: KeySet) -> Iterator[SimulatorProcess]:
    sim = SimulatorProcess(keyset)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
async def make_adapter(simulator: SimulatorProcess) -> AsyncIterator[AdapterFactory]:
    """Started adapters (with a notification listener) against the simulator."""

    def build(clock: Callable[[], float] = time.time, **overrides: Any) -> WechatPayAdapter:
        return WechatPayAdapter(settings(simulator, **overrides), clock=clock)

    async with adapter_pool(build) as make:
        yield make
