"""The bench command's own logic: what it records of the command line, and its flag checks."""

from __future__ import annotations

import pathlib

import pytest

from bench import cli, report
from tests.unit.bench.conftest import MakeRun


def test_api_keys_never_reach_the_recorded_command() -> None:
    argv = ["run", "--api-key", "sk_live_1", "--target", "h:1", "--api-key=sk_live_2"]
    assert cli.redact(argv) == ["run", "--api-key", "***", "--target", "h:1", "--api-key=***"]


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["run", "--target", "nohost", "--calibrate", "0"], "--target"),
        (["run", "--mode", "open", "--calibrate", "0"], "--rate"),
        (["run", "--duration", "1", "--requests", "5", "--calibrate", "0"], "--duration"),
        (["run", "--scenario", "nope", "--calibrate", "0"], "scenario"),
        (["run", "--processes", "4", "--concurrency", "2", "--calibrate", "0"], "--concurrency"),
        (["run", "--ca", "/nonexistent.pem", "--calibrate", "0"], "--ca"),
        (["run", "--repeat", "0", "--calibrate", "0"], "--repeat"),
    ],
)
def test_bad_settings_exit_2_naming_the_flag(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    assert flag in capsys.readouterr().err


def test_compare_exits_1_on_a_worse_figure_when_asked(
    run_of: MakeRun, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = []
    for name, latency in (("a", 1000), ("b", 5000)):
        rep = report.new_report("run", ["run"], {})
        report.add_runs(rep, [run_of(latencies_us=[latency] * 10)], None)
        paths.append(str(report.write(rep, tmp_path / f"{name}.json")))
    assert cli.main(["compare", *paths]) == 0
    assert "worse" in capsys.readouterr().out
    assert cli.main(["compare", "--fail-on-worse", *paths]) == 1
    assert cli.main(["compare", "--fail-on-worse", paths[0], paths[0]]) == 0
