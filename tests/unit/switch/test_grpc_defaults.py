"""The gRPC settings payswitch's processes start with: set before grpc is loaded, or they do
nothing, and never over an operator's own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Records GRPC_EXPERIMENTS as it is when grpc is first imported, by whichever module.
_SHOW = """
import os, sys
seen = []
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "grpc" and not seen:
            seen.append(os.environ.get("GRPC_EXPERIMENTS"))
sys.meta_path.insert(0, Watch())
import {package}
import grpc
print(repr(seen[0]))
"""


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


# The switch, the bench, a worker started on its own module, and an outside author's worker,
# which imports the SDK.
@pytest.mark.parametrize("package", ["switch", "bench", "adapters.sandbox.worker", "adapters.sdk"])
def test_the_iomgr_listener_is_chosen_before_grpc_is_loaded(package: str) -> None:
    # gRPC's core reads GRPC_EXPERIMENTS once, as it loads: it must be set by then.
    assert _started(package, None) == "'-event_engine_listener'"


@pytest.mark.parametrize("own", ["event_engine_listener", ""])
def test_an_operators_own_setting_is_kept_even_an_empty_one(own: str) -> None:
    assert _started("switch", own) == repr(own)
