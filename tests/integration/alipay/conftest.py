"""Alipay channel fixtures: fresh keys, a real simulator process, adapters over real HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from adapters.alipay.adapter import AlipayAdapter
from tests.integration.alipay.alipaykit import (
    Events,
    KeySet,
    SimulatorProcess,
    adapter_pool,
    settings,
)

AdapterFactory = Callable[..., Awaitable[tuple[AlipayAdapter, Events]]]


@pytest.fixture(scope="module")
def keyset(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    return KeySet.create(tmp_path_factory.mktemp("alipay-keys"))


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
    """Started adapters against the simulator (stopped at the end); overrides go to settings."""

    def build(clock: Callable[[], float] = time.time, **overrides: Any) -> AlipayAdapter:
        return AlipayAdapter(settings(simulator, **overrides), clock=clock)

    async with adapter_pool(build) as make:
        yield make
