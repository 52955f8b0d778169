"""Starting adapter workers for contract tests: real processes run by `python -m switch`."""

from __future__ import annotations

import sys

from adapters.sdk.conformance.process import WorkerProcess
from tests.support import REPO


def adapter_command(name: str, *flags: str) -> list[str]:
    """`payswitch adapter NAME FLAGS...` as a command line; WorkerProcess adds --listen."""
    return [sys.executable, "-m", "switch", "adapter", name, *flags]


def adapter_process(name: str, *flags: str) -> WorkerProcess:
    """A worker process for the registered channel `name`, run from the repository root."""
    return WorkerProcess(adapter_command(name, *flags), cwd=str(REPO))
