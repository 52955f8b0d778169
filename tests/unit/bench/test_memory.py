"""Resident-memory sampling and its summary."""

from __future__ import annotations

import os

from bench import memory


def row(phase: str, **rss: int | None) -> dict[str, object]:
    return {"phase": phase, "rss_kib": rss}


def test_reads_this_process_resident_memory() -> None:
    kib = memory.read_rss_kib(os.getpid())
    assert kib is not None and kib > 1000


def test_a_process_that_is_gone_reads_as_none() -> None:
    assert memory.read_rss_kib(2**22 + 12345) is None


def test_growth_is_from_the_last_warmup_reading_to_the_last_measured_one() -> None:
    timeline = [
        row("warm-up", p=50_000),
        row("warm-up", p=80_000),
        row("measure", p=90_000),
        row("measure", p=84_000),
    ]
    m = memory.summarize(timeline)["p"]
    assert m == {
        "after_warmup_kib": 80_000,
        "end_kib": 84_000,
        "max_kib": 90_000,
        "growth_ratio": 0.05,
    }


def test_without_warmup_the_first_measured_reading_is_the_baseline() -> None:
    m = memory.summarize([row("measure", p=100), row("measure", p=150)])["p"]
    assert m["after_warmup_kib"] == 100 and m["growth_ratio"] == 0.5


def test_a_process_that_died_is_reported_not_hidden() -> None:
    m = memory.summarize([row("warm-up", p=100), row("measure", p=None)])["p"]
    assert "gone" in m["error"]


def test_unwatched_runs_have_no_memory_figures() -> None:
    assert memory.summarize([{"phase": "measure", "rpcs": {}}]) == {}
