"""The gRPC settings the switch's processes start with: set before grpc is loaded, or they do
nothing, and never over an operator's own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_SHOW = (
    "import sys, os\n"
    "import {package}\n"
    "print(repr(os.environ.get('GRPC_EXPERIMENTS')), 'grpc' in sys.modules)\n"
)


def _started(package: str, experiments: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    if experiments is not None:
        env["GRPC_EXPERIMENTS"] = experiments
    done = subprocess.run(
        [sys.executable, "-c", _SHOW.format(package=package)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


@pytest.mark.parametrize("package", ["switch", "bench"])
def test_the_iomgr_listener_is_chosen_before_grpc_is_loaded(package: str) -> None:
    # grpc must not be loaded yet: gRPC's core reads GRPC_EXPERIMENTS once, as it loads.
    assert _started(package, None) == "'-event_engine_listener' False"


@pytest.mark.parametrize("own", ["event_engine_listener", ""])
def test_an_operators_own_setting_is_kept_even_an_empty_one(own: str) -> None:
    assert _started("switch", own) == f"{own!r} False"
