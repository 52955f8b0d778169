"""The watched processes: resident memory and CPU time, sampled and summarized."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

from bench import processes


def row(phase: str, **rss: int | None) -> dict[str, object]:
    return {"phase": phase, "rss_kib": rss}


def timed(t_s: float, phase: str, calls: int, cpu_s: float | None) -> dict[str, object]:
    """An interval's row as the runner writes it: its end, its calls, one watched process."""
    return {
        "read_s": t_s,
        "phase": phase,
        "rpcs": {"Authorize": {"calls": calls}},
        "rss_kib": {"switch": 60_000},
        "cpu_s": {"switch": cpu_s},
    }


def test_reads_this_process_resident_memory() -> None:
    kib = processes.read_rss_kib(os.getpid())
    assert kib is not None and kib > 1000


def test_a_process_that_is_gone_reads_as_none() -> None:
    assert processes.read_rss_kib(2**22 + 12345) is None


def test_growth_is_from_the_last_warmup_reading_to_the_last_measured_one() -> None:
    timeline = [
        row("warm-up", p=50_000),
        row("warm-up", p=80_000),
        row("measure", p=90_000),
        row("measure", p=84_000),
    ]
    m = processes.summarize(timeline)["p"]
    assert m == {
        "after_warmup_kib": 80_000,
        "end_kib": 84_000,
        "max_kib": 90_000,
        "growth_ratio": 0.05,
    }


def test_without_warmup_the_first_measured_reading_is_the_baseline() -> None:
    m = processes.summarize([row("measure", p=100), row("measure", p=150)])["p"]
    assert m["after_warmup_kib"] == 100 and m["growth_ratio"] == 0.5


def test_a_process_that_died_is_reported_not_hidden() -> None:
    m = processes.summarize([row("warm-up", p=100), row("measure", p=None)])["p"]
    assert "gone" in m["error"]
    # Gone before it was ever read, or never read while measuring: said, not left out.
    m = processes.summarize([row("warm-up", p=None), row("measure", p=None)])["p"]
    assert m["error"] == "the process was gone before the first reading"
    m = processes.summarize([row("warm-up", p=100)])["p"]
    assert "no reading in the measured part" in m["error"]


def test_cores_are_over_the_time_between_the_readings_not_the_intervals() -> None:
    # The run's last interval is cut short where the load stops: its reading comes 0.2 s after
    # the one before, though the interval is nominally 1 s long.
    timeline = [
        {**timed(1.0, "warm-up", 100, 1.0), "t_s": 1.0},
        {**timed(2.0, "measure", 100, 2.0), "t_s": 2.0},
        {**timed(2.2, "measure", 10, 2.2), "t_s": 3.0},
    ]
    m = processes.summarize(timeline)["switch"]
    assert m["cpu_cores"] == 1.0  # 1.2 s of CPU in 1.2 s, not in a nominal 2 s


def test_unwatched_runs_have_no_memory_figures() -> None:
    assert processes.summarize([{"phase": "measure", "rpcs": {}}]) == {}


def test_reads_this_process_cpu_time() -> None:
    before = processes.read_cpu_s(os.getpid())
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    after = processes.read_cpu_s(os.getpid())
    assert before is not None and after is not None
    # /proc counts in clock ticks (10 ms here): the 50 ms spent shows, give or take a tick.
    assert after - before >= 0.03


def test_a_process_that_is_gone_has_no_cpu_time() -> None:
    assert processes.read_cpu_s(2**22 + 12345) is None


def test_a_command_name_with_spaces_and_parentheses_is_skipped_whole(tmp_path) -> None:
    # Field 2 of /proc/PID/stat is the command name in parentheses, and may hold both: counted
    # naively, the fields after it shift and the CPU read is some other counter's.
    odd = tmp_path / "odd) x (y"
    odd.symlink_to(sys.executable)
    busy = "import time\nt = time.process_time() + 0.3\nwhile time.process_time() < t: pass\n"
    proc = subprocess.Popen(
        [str(odd), "-c", busy + "print('busy', flush=True); time.sleep(10)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "busy\n"
        assert "(odd) x (y)" in pathlib.Path(f"/proc/{proc.pid}/stat").read_text()
        cpu = processes.read_cpu_s(proc.pid)
        assert cpu is not None and cpu >= 0.25
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_cpu_per_call_counts_the_measured_intervals_after_the_warmup() -> None:
    timeline = [
        timed(1.0, "warm-up", 500, 10.0),
        timed(2.0, "warm-up", 800, 10.5),
        timed(3.0, "measure", 1_000, 11.0),
        timed(4.0, "measure", 1_000, 11.8),
    ]
    m = processes.summarize(timeline)["switch"]
    # 1.3 s of CPU over the 2,000 calls measured after the last warm-up reading, in 2 s.
    assert m["cpu_us_per_call"] == 650.0
    assert m["cpu_cores"] == 0.65


def test_without_warmup_cpu_counts_from_the_first_measured_reading() -> None:
    timeline = [timed(1.0, "measure", 1_000, 5.0), timed(2.0, "measure", 400, 5.2)]
    m = processes.summarize(timeline)["switch"]
    assert m["cpu_us_per_call"] == 500.0 and m["cpu_cores"] == 0.2


def test_no_cpu_figure_when_a_reading_is_missing() -> None:
    timeline = [timed(1.0, "warm-up", 10, None), timed(2.0, "measure", 10, 3.0)]
    m = processes.summarize(timeline)["switch"]
    assert "cpu_us_per_call" not in m and "cpu_cores" not in m
    assert m["end_kib"] == 60_000


def test_the_machine_reads_busier_while_this_process_spins() -> None:
    before = processes.read_machine_busy_s()
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    after = processes.read_machine_busy_s()
    assert before is not None and after is not None and after - before >= 0.03


def test_machine_cores_over_the_measured_part() -> None:
    def at(t_s: float, phase: str, busy_s: float | None) -> dict[str, object]:
        return {"read_s": t_s, "phase": phase, "machine_busy_s": busy_s}

    timeline = [at(1.0, "warm-up", 3.0), at(2.0, "warm-up", 4.0), at(4.0, "measure", 7.5)]
    assert processes.machine_cores(timeline) == 1.75
    assert processes.machine_cores([at(1.0, "measure", 1.0), at(3.0, "measure", 2.0)]) == 0.5
    # Readings missing (no /proc) or nothing measured: no figure rather than a wrong one.
    assert processes.machine_cores([at(1.0, "warm-up", None), at(2.0, "measure", None)]) is None
    assert processes.machine_cores([at(1.0, "warm-up", 1.0)]) is None
