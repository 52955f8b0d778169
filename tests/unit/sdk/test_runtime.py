"""tune_gc, in a process of its own (it changes the whole process's collector)."""

from __future__ import annotations

import os
import subprocess
import sys

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
