"""Card channel fixtures: an in-process simulator on a real socket, adapters with short timeouts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.card.adapter import CardAdapter
from adapters.card.simulator import Simulator
from tests.unit.card.cardkit import (
    SLOW_SECONDS,
    AdapterFactory,
    Events,
    GatedHost,
    RunningSimulator,
    card_config,
)


@pytest.fixture
async def simulator(tmp_path: Path) -> AsyncIterator[RunningSimulator]:
    host = GatedHost(state_file=tmp_path / "host.jsonl", slow_seconds=SLOW_SECONDS)
    sim = Simulator(host, frame_timeout=1.0)
    port = await sim.start("127.0.0.1", 0)
    try:
        yield RunningSimulator(sim, host, port)
    finally:
        await sim.stop()


@pytest.fixture
async def make_adapter(tmp_path: Path) -> AsyncIterator[AdapterFactory]:
    """Start adapters (stopped at the end); a second one on the same file is a restart."""
    started: list[CardAdapter] = []

    async def make(port: int, **overrides: Any) -> tuple[CardAdapter, Events]:
        adapter = CardAdapter(card_config(tmp_path, port, **overrides))
        events = Events()
        await adapter.start(events)
        started.append(adapter)
        return adapter, events

    try:
        yield make
    finally:
        for adapter in started:
            await adapter.stop()


@pytest.fixture
async def adapter(
    simulator: RunningSimulator, make_adapter: AdapterFactory
) -> tuple[CardAdapter, Events]:
    return await make_adapter(simulator.port)
