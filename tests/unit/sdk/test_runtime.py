"""tune_gc, in a process of its own (it changes the whole process's collector), and the
collector that runs between requests."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from adapters.sdk.runtime import IdleCollector
from tests.conftest import REPO

PROBE = """
import gc
from adapters.sdk.runtime import GC_YOUNG_THRESHOLD, tune_gc

class Node:
    def __init__(self):
        self.me = self  # a cycle: only the collector frees it

startup = [Node() for _ in range(1000)]
before = gc.get_threshold()
tune_gc()
after = gc.get_threshold()
print(after[0] == GC_YOUNG_THRESHOLD, after[1:] == before[1:], gc.get_freeze_count() > 1000)
for _ in range(3 * GC_YOUNG_THRESHOLD):
    Node()  # garbage cycles made after startup are still collected
print(gc.get_count()[0] < GC_YOUNG_THRESHOLD)
"""


def test_tune_gc_freezes_startup_and_raises_the_young_threshold() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["True", "True", "True", "True"]


def test_the_environment_can_set_another_young_threshold() -> None:
    probe = "import gc, adapters.sdk.runtime as r; r.tune_gc(); print(gc.get_threshold()[0])"
    env = {**os.environ, "PAYSWITCH_GC_YOUNG_THRESHOLD": "700"}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "700"


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generation of every collection run while the test runs; automatic ones are off, so
    each one seen was asked for."""
    seen: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    gc.callbacks.append(record)
    try:
        yield seen
    finally:
        gc.callbacks.remove(record)
        if enabled:
            gc.enable()


def _garbage(n: int) -> None:
    for _ in range(n):
        _Node()


async def test_the_young_generation_is_collected_once_the_last_request_ends(
    collections: list[int],
) -> None:
    idle = IdleCollector(after=500)
    idle.begin()
    idle.begin()
    _garbage(1000)
    idle.end()
    await asyncio.sleep(0)
    assert collections == []  # one request is still in flight
    idle.end()
    assert collections == []  # not inside the request's own end: at the next turn
    await asyncio.sleep(0)
    assert collections == [0]
    assert gc.get_count()[0] < 500


async def test_a_request_that_starts_before_the_turn_puts_the_collection_off(
    collections: list[int],
) -> None:
    idle = IdleCollector(after=500)
    idle.begin()
    _garbage(1000)
    idle.end()
    idle.begin()  # arrived in the same turn
    await asyncio.sleep(0)
    assert collections == []
    idle.end()
    await asyncio.sleep(0)
    assert collections == [0]


async def test_little_garbage_or_a_zero_setting_collects_nothing(collections: list[int]) -> None:
    few = IdleCollector(after=5000)
    off = IdleCollector(after=0)
    for idle in (few, off):
        idle.begin()
        _garbage(1000)
        idle.end()
        await asyncio.sleep(0)
    assert collections == []


async def test_the_middle_generation_is_collected_when_its_count_is_due(
    collections: list[int],
) -> None:
    idle = IdleCollector(after=500)
    for _ in range(gc.get_threshold()[1] + 1):
        idle.begin()
        _garbage(600)
        idle.end()
        await asyncio.sleep(0)
    assert 1 in collections  # young collections counted up to the middle generation's turn
    assert set(collections) <= {0, 1}


async def test_the_oldest_generation_is_collected_when_its_count_is_due(
    collections: list[int],
) -> None:
    idle = IdleCollector(after=100)
    _, middle, oldest = gc.get_threshold()
    for _ in range((middle + 1) * (oldest + 1)):
        idle.begin()
        _garbage(120)
        idle.end()
        await asyncio.sleep(0)
    assert 2 in collections  # else cycles that outlived two collections would never be freed


async def test_the_environment_sets_the_idle_collection_and_a_bad_value_names_itself(
    monkeypatch: pytest.MonkeyPatch, collections: list[int]
) -> None:
    monkeypatch.setenv("PAYSWITCH_GC_IDLE_AFTER", "-5")
    with pytest.raises(ValueError, match="PAYSWITCH_GC_IDLE_AFTER"):
        IdleCollector()
    monkeypatch.setenv("PAYSWITCH_GC_IDLE_AFTER", "0")
    idle = IdleCollector()
    idle.begin()
    _garbage(1000)
    idle.end()
    await asyncio.sleep(0)
    assert collections == []  # 0 turns idle collections off
