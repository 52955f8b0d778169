"""`payswitch bench` as a user runs it: real processes, real servers, real h2load."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import REPO, stop_process
from tests.integration.bench.conftest import start_server
from tests.support import child_pids, gone_within


def bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )


def test_run_with_calibration_writes_a_report_that_compares_equal_to_itself(
    echo_address: str, tmp_path: pathlib.Path
) -> None:
    out = tmp_path / "run.json"
    done = bench(
        "run",
        "--target",
        echo_address,
        "--duration",
        "1",
        "--warmup",
        "0.3",
        "--calibrate",
        "1",
        "--api-key",
        "secret-key-123",
        "--quiet",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert "calls/s" in done.stdout and f"report: {out}" in done.stdout
    report = json.loads(out.read_text())
    assert report["kind"] == "run"
    assert report["machine"]["cpu_count"] > 0
    assert len(report["machine"]["load_average_at_end"]) == 3
    assert report["finished"] >= report["date"]
    assert report["software"]["grpcio"]
    assert report["config"]["load"]["mode"] == "closed"
    assert report["figures"]["rate"]["value"] > 0
    # The host probed before the load: its figures in the report and a line in the output.
    assert report["machine"]["probe"]["hop_10ms_us"] > 0
    assert report["figures"]["host.work_10ms_us"]["value"] > 0
    assert "host: Python loop" in done.stdout
    # The harness's rate as a share of h2load's against the echo server, measured in this run.
    calibration = report["calibration"]
    assert calibration["h2load_rps"] > 0 and calibration["harness_rps"] > 0
    assert report["figures"]["calibration.share"]["value"] == calibration["share"]
    assert calibration["echo_served_calls"] >= calibration["measured_calls"]
    # The API key never reaches the report.
    assert "secret-key-123" not in out.read_text()

    same = bench("compare", str(out), str(out))
    assert same.returncode == 0, same.stderr
    assert "0 better, 0 worse" in same.stdout


def test_baseline_command_records_h2load_and_harness(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "baseline.json"
    done = bench(
        "baseline",
        "--duration",
        "1",
        "--warmup",
        "0.5",
        "--rounds",
        "1",
        "--quiet",
        "--out",
        str(out),
    )
    # Exit 1 says the harness fell below its required share; either way the figures are kept.
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(out.read_text())
    cal = report["calibration"]
    assert cal["rounds"][0]["h2load_rps"] > 0
    assert cal["rounds"][0]["harness_rps"] > 0
    assert (done.returncode == 1) == cal["harness_is_bottleneck"]
    assert "harness at" in done.stdout


def _step(
    echo_address: str, out: pathlib.Path, slo_p99_ms: str, *more: str
) -> subprocess.CompletedProcess[str]:
    """Steps of 100 calls/s up to 200 against the echo server, half a second each."""
    return bench(
        "step",
        "--target",
        echo_address,
        *("--start-rate", "100", "--step-rate", "100", "--max-rate", "200"),
        *("--step-duration", "0.5", "--warmup", "0.2", "--slo-p99-ms", slo_p99_ms),
        *more,
        *("--calibrate", "0", "--quiet", "--out", str(out)),
    )


def test_step_mode_reports_every_step(echo_address: str, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "step.json"
    done = _step(echo_address, out, "1000")
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    rates = [s["rate"] for s in report["steps"]]
    assert rates[0] == 100
    assert report["capacity_rps"] in (None, *rates)
    assert all(s["result"]["calls"] > 0 for s in report["steps"])
    assert "then" not in report


def test_step_then_runs_at_half_the_capacity(echo_address: str, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "step.json"
    done = _step(echo_address, out, "5000", "--then-at", "0.5", "--then-runs", "2")
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["capacity_rps"] == 200
    assert report["then"]["rate"] == 100
    assert [r["offered_rate"] for r in report["then"]["runs"]] == [100, 100]
    assert all(r["calls"] > 0 for r in report["then"]["runs"])
    assert report["figures"]["then.rate"]["runs"] == 2
    assert "at 50% of capacity: 100 calls/s offered" in done.stdout


def test_bad_flags_exit_2_with_the_flag_named() -> None:
    done = bench("run", "--mode", "open", "--calibrate", "0")
    assert done.returncode == 2
    assert "--rate" in done.stderr


def test_without_h2load_the_run_still_measures_the_echo_ceiling(
    echo_address: str, tmp_path: pathlib.Path
) -> None:
    out = tmp_path / "run.json"
    # A PATH holding only Python's own folder: no h2load on it.
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}
    done = bench(
        "run",
        "--target",
        echo_address,
        "--duration",
        "0.5",
        "--warmup",
        "0.2",
        "--calibrate",
        "0.5",
        "--quiet",
        "--out",
        str(out),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "nghttp2-client" in done.stdout
    calibration = json.loads(out.read_text())["calibration"]
    assert calibration["share"] is None and calibration["h2load_rps"] is None
    assert calibration["harness_rps"] > 0


def test_watched_process_memory_and_cpu_are_sampled_and_reported(tmp_path: pathlib.Path) -> None:
    proc, address = start_server(["-m", "bench.baseline", "--listen", "127.0.0.1:0"])
    try:
        out = tmp_path / "run.json"
        done = bench(
            "run",
            "--target",
            address,
            "--duration",
            "2",
            "--warmup",
            "1",
            "--interval",
            "0.5",
            "--calibrate",
            "0",
            "--watch-pid",
            f"echo={proc.pid}",
            "--watch-pid",
            str(os.getpid()),  # this test process: alive, idle, unlabelled
            "--quiet",
            "--out",
            str(out),
        )
    finally:
        stop_process(proc)
        assert proc.stdout is not None
        proc.stdout.close()
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    run = report["runs"][0]
    mem = run["processes"]["echo"]
    # A Python gRPC server holds tens of MiB; each interval carries its reading.
    assert mem["after_warmup_kib"] > 10_000 and mem["end_kib"] > 10_000
    assert mem["max_kib"] >= max(mem["after_warmup_kib"], mem["end_kib"])
    assert all("echo" in row["rss_kib"] and "echo" in row["cpu_s"] for row in run["timeline"])
    # The server did the work of every call: some CPU per call, and it is in the figures that
    # compare reads. The idle test process spent next to none per call.
    assert mem["cpu_us_per_call"] > 0 and mem["cpu_cores"] > 0
    assert run["processes"][f"pid {os.getpid()}"]["cpu_us_per_call"] < mem["cpu_us_per_call"]
    assert report["figures"]["process.echo.cpu_us_per_call"]["value"] == mem["cpu_us_per_call"]
    # The table: one row per watched process, in the order given.
    rows = [x.split() for x in done.stdout.splitlines() if x.startswith(("echo ", "pid "))]
    assert [r[0] for r in rows] == ["echo", "pid"] and rows[1][1] == str(os.getpid())
    assert rows[0][1:4] == [f"{mem['cpu_us_per_call']:,.0f}", "us", f"{mem['cpu_cores']:.2f}"]
    assert rows[0][4:6] == [f"{mem['after_warmup_kib'] / 1024:,.1f}", "MiB"]
    assert report["config"]["watch"] == ["echo", f"pid {os.getpid()}"]
    assert mem["pid"] == proc.pid
    # The machine as a whole: at least what the server and the generators spent.
    machine = run["machine"]
    assert machine["busy_cores"] >= mem["cpu_cores"] and machine["generator_cores"] > 0
    assert machine["watched_cores"] >= mem["cpu_cores"]
    assert f"machine: {machine['busy_cores']:.2f} of {os.cpu_count()} cores busy" in done.stdout


def test_cpu_taken_by_an_unwatched_process_is_called_out(tmp_path: pathlib.Path) -> None:
    # Another process spinning through the run takes CPU the target then lacks: the report
    # says so, rather than leaving a low rate unexplained.
    proc, address = start_server(["-m", "bench.baseline", "--listen", "127.0.0.1:0"])
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        out = tmp_path / "run.json"
        done = bench(
            "run",
            *("--target", address, "--duration", "2", "--warmup", "1", "--interval", "0.5"),
            *("--calibrate", "0", "--watch-pid", f"echo={proc.pid}", "--quiet"),
            *("--out", str(out)),
        )
    finally:
        spin.kill()
        spin.wait()
        stop_process(proc)
        assert proc.stdout is not None
        proc.stdout.close()
    assert done.returncode == 0, done.stderr
    run = json.loads(out.read_text())["runs"][0]
    # The spinner alone keeps most of a core busy (it shares 2 cores with the run).
    assert run["machine"]["other_cores"] > 0.25, run["machine"]
    assert "warning: processes neither watched nor generators kept" in done.stdout


def test_a_watched_process_that_exits_midway_does_not_end_the_series(
    echo_address: str, tmp_path: pathlib.Path
) -> None:
    # It lives through part of the first run only (read 0.25 s after the generators start, which
    # takes under 2 s; the run ends 4 s after that): that run and the next say it is gone, and
    # the report of both runs is still written.
    brief = subprocess.Popen(["sleep", "4"])
    # Reaped the moment it exits, so that it is gone rather than a zombie /proc still lists.
    reaper = threading.Thread(target=brief.wait, daemon=True)
    reaper.start()
    try:
        out = tmp_path / "run.json"
        done = bench(
            "run",
            *("--target", echo_address, "--duration", "3", "--warmup", "1"),
            *("--interval", "0.25", "--repeat", "2", "--calibrate", "0", "--quiet"),
            *("--watch-pid", f"brief={brief.pid}", "--out", str(out)),
        )
    finally:
        brief.kill()
        reaper.join(5)
    assert done.returncode == 0, done.stderr
    first, second = json.loads(out.read_text())["runs"]
    assert first["processes"]["brief"]["error"] == "the process was gone before the end of the run"
    assert second["processes"]["brief"]["error"] == "the process was gone before the first reading"


def test_watching_a_process_that_does_not_exist_is_refused() -> None:
    done = bench("run", "--watch-pid", "999999999", "--calibrate", "0")
    assert done.returncode == 2
    assert "--watch-pid" in done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--watch-pid", "switch=abc"], "not a pid: 'abc'"),
        (["--watch-pid", "switch=0"], "not a pid: 0"),
        (["--watch-pid", f"a={os.getpid()}", "--watch-pid", f"a={os.getppid()}"], "own label"),
    ],
)
def test_a_bad_watch_is_refused_before_any_load(args: list[str], says: str) -> None:
    done = bench("run", *args, "--calibrate", "0")
    assert done.returncode == 2
    assert says in done.stderr


def _cmdline(pid: int) -> str:
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


def test_generators_stop_when_the_bench_command_is_killed(echo_address: str) -> None:
    # A bench command killed from outside runs no cleanup; its generators must not go on
    # loading the target unseen.
    cmd = [sys.executable, "-m", "bench", "run", "--target", echo_address, "--duration", "60"]
    run = subprocess.Popen(
        [*cmd, "--calibrate", "0", "--processes", "2", "--quiet"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        generators: list[int] = []
        while len(generators) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            generators = [c for c in child_pids(run.pid) if "spawn_main" in _cmdline(c)]
        assert len(generators) == 2, "the generators did not start"
        time.sleep(1.0)  # under load
        run.kill()
        run.wait(5)
        assert gone_within(generators, 10) == [], "generators outlived the bench command"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(5)
