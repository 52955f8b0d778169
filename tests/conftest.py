"""Fixtures every test layer shares: a real redis-server on a free port."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest

from tests.support import (  # noqa: F401 - re-exported for test modules
    REPO,
    RedisServer,
    free_port,
    spawn,
    stop_process,
    wait_for_port,
)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh, empty redis-server for one test."""
    with tempfile.TemporaryDirectory(prefix="payswitch-redis-") as d:
        server = RedisServer(port=free_port(), dir=d)
        server.start()
        try:
            yield server
        finally:
            server.stop()
