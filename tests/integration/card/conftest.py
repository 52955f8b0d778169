"""Card integration fixtures: stacks of a simulator process and a card worker process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.card.cardprocs import CardStack, make_stack


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CardStack]:
    """One simulator and one worker for the tests that only drive flows."""
    stack = make_stack(tmp_path_factory.mktemp("card"))
    stack.simulator.start()
    stack.worker.start()
    try:
        yield stack
    finally:
        stack.worker.stop()
        stack.simulator.stop()


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator[Callable[..., CardStack]]:
    """Fresh, unstarted stacks: the test starts, kills and restarts their processes."""
    made: list[CardStack] = []

    def make(acquirer_port: int | None = None) -> CardStack:
        stack = make_stack(tmp_path, acquirer_port)
        made.append(stack)
        return stack

    try:
        yield make
    finally:
        for stack in made:
            stack.worker.stop()
            stack.simulator.stop()
