"""WeChat Pay channel fixtures: fresh keys, a real simulator process, adapters over real HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from adapters.wechat.adapter import WechatPayAdapter
from tests.integration.alipay.alipaykit import Events
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
    adapters: list[WechatPayAdapter] = []

    async def make(
        clock: Callable[[], float] = time.time, **overrides: Any
    ) -> tuple[WechatPayAdapter, Events]:
        adapter = WechatPayAdapter(settings(simulator, **overrides), clock=clock)
        adapters.append(adapter)
        events = Events()
        await adapter.start(events)
        return adapter, events

    try:
        yield make
    finally:
        for adapter in adapters:
            await adapter.stop()
