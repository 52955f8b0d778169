"""`payswitch bench`: run, step, compare, baseline and echo-server, wired together here."""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import secrets
import sys
from collections.abc import Sequence
from typing import Any

from bench import compare, hostprobe, plots, report, runner, step, table
from bench.baseline import calibrate, echo_server, h2load
from bench.config import ConfigError, Load, RunConfig, Target, default_processes
from bench.scenarios import OPERATIONS, SCENARIOS, parse_mix

# Unary calls over several connections by default: a switch's callers are many processes, and a
# single connection would measure one of the switch's accept loops (README: server.accept_loops).
UNARY_CHANNELS = 8

USAGE = """payswitch bench COMMAND [options]

commands:
  run          drive a Gateway with a scenario (closed or open loop) and report the figures
  step         raise an open loop's rate until an objective breaks; report the highest that held
  compare      show the difference between two JSON reports, figure by figure, against noise
  baseline     echo server + h2load + harness in one go: the ceiling and the harness's share
  echo-server  the bare grpc.aio echo server on uvloop (the ceiling), --listen HOST:PORT
"""


def _add_target(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("target")
    g.add_argument("--target", default="127.0.0.1:50051", help="the Gateway, HOST:PORT")
    g.add_argument("--tls", action="store_true", help="use TLS")
    g.add_argument("--ca", default=None, help="PEM file of trusted roots for --tls")
    g.add_argument(
        "--api-key",
        default=os.environ.get("PAYSWITCH_API_KEY"),
        help="sent as `authorization: Bearer KEY` (default: $PAYSWITCH_API_KEY)",
    )
    g.add_argument("--deadline-ms", type=int, default=5000, help="deadline of each call")
    g.add_argument(
        "--connect-timeout", type=float, default=15.0, help="seconds to wait for a connection"
    )


def _add_load(p: argparse.ArgumentParser) -> None:
    ops = ", ".join(f"{op.name} ({op.description})" for op in OPERATIONS)
    g = p.add_argument_group("load")
    g.add_argument(
        "--scenario",
        default="authorize",
        help=f"a named mix ({', '.join(SCENARIOS)}) or OP=WEIGHT,... with OP from: {ops}",
    )
    g.add_argument("--mode", choices=("closed", "open"), default="closed")
    g.add_argument("--concurrency", type=int, default=32, help="closed loop: callers in all")
    g.add_argument("--rate", type=float, default=0.0, help="open loop: requests/s in all")
    g.add_argument("--duration", type=float, default=None, help="seconds measured (default 10)")
    g.add_argument("--requests", type=int, default=None, help="requests measured, not seconds")
    g.add_argument("--warmup", type=float, default=2.0, help="seconds of load not measured")
    g.add_argument(
        "--processes",
        type=int,
        default=default_processes(),
        help="generator processes (default: half the cores, the rest left to a local server)",
    )
    g.add_argument(
        "--channels",
        type=int,
        default=None,
        help="gRPC channels (TCP connections) per process; default 8 for unary calls, as many"
        " callers open many connections (and the switch accepts calls on several loops, spread"
        " by connection), 1 for streams",
    )
    g.add_argument(
        "--transport",
        choices=("unary", "stream", "batch"),
        default="unary",
        help="one unary call per request, or messages on StreamPayments streams",
    )
    g.add_argument("--streams", type=int, default=4, help="stream transport: streams per channel")
    g.add_argument(
        "--unary-client",
        choices=("lean", "grpcio"),
        default="lean",
        help="how unary calls are made: the harness's own HTTP/2 client (lean, under half the"
        " CPU per call) or grpc.aio's (to check a figure against the stock client)",
    )
    g.add_argument(
        "--max-inflight", type=int, default=256, help="open loop: calls in flight per process"
    )
    g.add_argument("--interval", type=float, default=1.0, help="seconds per progress interval")
    g.add_argument(
        "--pool-rate",
        type=int,
        default=25_000,
        help="closed loop: requests per second per process to build before the run (a"
        " generator that runs out ends its run early, with a warning)",
    )
    g.add_argument("--seed", type=int, default=1, help="seed of the scenario's draw")
    g.add_argument(
        "--watch-pid",
        type=_watched,
        action="append",
        default=[],
        metavar="[LABEL=]PID",
        help="read this process's resident memory and CPU time each interval and report its CPU"
        " per call (repeatable), e.g. switch=PID redis=PID",
    )


def _watched(value: str) -> tuple[str, int]:
    """`--watch-pid PID` or `--watch-pid LABEL=PID`: the process and its name in the report."""
    label, _, pid = value.rpartition("=")
    try:
        number = int(pid)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a pid: {pid!r} (give PID or LABEL=PID)") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"not a pid: {number}")
    return (label or f"pid {number}", number)


def _add_output(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None, help="JSON report path (default bench/results/...)")
    g.add_argument("--quiet", action="store_true", help="no live progress line")
    g.add_argument(
        "--calibrate",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="first measure the echo server with h2load and the harness for this long, so the"
        " report states the harness's share of h2load (0: skip)",
    )
    g.add_argument("--calibrate-rounds", type=int, default=1)


def _run_config(ns: argparse.Namespace) -> RunConfig:
    duration = ns.duration
    if duration is None and ns.requests is None:
        duration = 10.0
    return RunConfig(
        target=Target(
            address=ns.target,
            tls=ns.tls,
            ca_file=ns.ca,
            api_key=ns.api_key,
            deadline_ms=ns.deadline_ms,
            connect_timeout_s=ns.connect_timeout,
        ),
        load=Load(
            mode=ns.mode,
            concurrency=ns.concurrency,
            rate=ns.rate,
            duration_s=duration,
            requests=ns.requests,
            warmup_s=ns.warmup,
            processes=ns.processes,
            channels=ns.channels or (UNARY_CHANNELS if ns.transport == "unary" else 1),
            max_inflight=ns.max_inflight,
            interval_s=ns.interval,
            pool_rate=ns.pool_rate,
            transport=ns.transport,
            streams=ns.streams,
            unary_client=ns.unary_client,
        ),
        scenario=parse_mix(ns.scenario),
        seed=ns.seed,
        watch=tuple(ns.watch_pid),
    )


def redact(argv: Sequence[str]) -> list[str]:
    """The command line as a report may show it: never an API key."""
    out: list[str] = []
    hide = False
    for arg in argv:
        if hide:
            out.append("***")
            hide = False
        elif arg == "--api-key":
            out.append(arg)
            hide = True
        elif arg.startswith("--api-key="):
            out.append("--api-key=***")
        else:
            out.append(arg)
    return out


def _calibration(ns: argparse.Namespace, cfg: RunConfig) -> dict[str, Any] | None:
    if ns.calibrate <= 0:
        return None
    load = cfg.load
    return calibrate.calibrate(
        calibrate.CalibrationConfig(
            seconds=ns.calibrate,
            warmup_s=min(2.0, ns.calibrate / 2),
            rounds=ns.calibrate_rounds,
            concurrency=load.concurrency if load.mode == "closed" else 32,
            processes=load.processes,
            channels=load.channels,
            deadline_ms=cfg.target.deadline_ms,
            unary_client=load.unary_client,
        ),
        out=None if ns.quiet else sys.stderr,
    )


def _new_report(kind: str, argv: Sequence[str], config: dict[str, Any]) -> dict[str, Any]:
    """A report's frame, with the host probed before any load starts."""
    rep = report.new_report(kind, redact(argv), config)
    rep["machine"]["probe"] = hostprobe.probe()
    return rep


def _finish(rep: dict[str, Any], ns: argparse.Namespace, kind: str) -> pathlib.Path:
    report.add_host_figures(rep)
    print(hostprobe.render(rep["machine"]["probe"]))
    report.finish(rep)
    path = report.write(rep, ns.out or report.default_path(kind))
    print(f"\nreport: {path}")
    return path


def cmd_run(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    if ns.repeat < 1:
        raise ConfigError("--repeat: at least 1")
    cfg = _run_config(ns)
    cfg.check()
    out = None if ns.quiet else sys.stderr
    rep = _new_report("run", argv, cfg.as_dict())
    calibration = _calibration(ns, cfg)
    runs = []
    for i in range(ns.repeat):
        if ns.repeat > 1 and out is not None:
            print(f"run {i + 1}/{ns.repeat}", file=out)
        # A fresh run id per repeat keeps every idempotency key unique across repeats.
        runs.append(runner.run(dataclasses.replace(cfg, run_id=secrets.token_hex(4)), out=out))
    report.add_runs(rep, runs, calibration)
    print(table.render_run(runs[-1]))
    if ns.repeat > 1:
        print("\n" + table.render_spread(rep["figures"]))
    if calibration is not None:
        print("\n" + table.render_calibration(calibration))
        share = rep["figures"].get("share_of_echo")
        if share is not None:
            print(f"target at {share['value']:.1%} of the echo ceiling (harness, same run)")
    path = _finish(rep, ns, "run")
    if ns.plot:
        _plot(runs[-1], path)
    return 0


def _plot(result: dict[str, Any], path: pathlib.Path) -> None:
    written = plots.plot_run(result, path.with_suffix(""))
    if written:
        print("plots: " + ", ".join(str(p) for p in written))
    else:
        print("plots: skipped, matplotlib is not installed (pip install matplotlib)")


def cmd_step(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    base = _run_config(ns)
    steps = step.Steps(
        start_rate=ns.start_rate,
        step_rate=ns.step_rate,
        max_rate=ns.max_rate,
        step_s=ns.step_duration,
        warmup_s=ns.warmup,
        refine=ns.refine,
        retries=ns.retries,
        then_share=ns.then_at,
        then_runs=ns.then_runs,
    )
    objective = step.Objective(p99_ms=ns.slo_p99_ms, error_ratio=ns.slo_errors)
    base.check()
    steps.check()
    objective.check()
    config = {
        **base.as_dict(),
        "steps": steps.as_dict(),
        "objective": dataclasses.asdict(objective),
    }
    rep = _new_report("step", argv, config)
    calibration = _calibration(ns, base)
    found = step.search(
        base, steps, objective, run=runner.run, out=None if ns.quiet else sys.stderr
    )
    rep.update(found)
    rep["calibration"] = calibration
    rep["figures"] = report.spread([{"capacity_rps": float(found["capacity_rps"] or 0.0)}])
    if "then" in found:
        rep["figures"].update(
            report.spread(
                {f"then.{k}": v for k, v in report.run_figures(r).items()}
                for r in found["then"]["runs"]
            )
        )
    print(
        table.render_steps(
            found["steps"], found["capacity_rps"], reached_max=found["reached_max_rate"]
        )
    )
    if "then" in found:
        print("\n" + table.render_then(found["then"]))
    if calibration is not None:
        print("\n" + table.render_calibration(calibration))
    _finish(rep, ns, "step")
    return 0


def cmd_compare(ns: argparse.Namespace) -> int:
    a, b = report.load(ns.a), report.load(ns.b)
    rows = compare.compare(a, b, floor=ns.floor)
    print(compare.render(a, b, rows))
    if ns.fail_on_worse and any(r.verdict == "worse" for r in rows):
        return 1
    return 0


def cmd_baseline(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    cfg = calibrate.CalibrationConfig(
        seconds=ns.duration,
        warmup_s=ns.warmup,
        rounds=ns.rounds,
        concurrency=ns.concurrency,
        processes=ns.processes,
        channels=ns.channels,
        deadline_ms=ns.deadline_ms,
        unary_client=ns.unary_client,
    )
    if not h2load.available():
        raise h2load.H2loadError(h2load.INSTALL_HINT)
    rep = _new_report("baseline", argv, cfg.as_dict())
    cal = calibrate.calibrate(cfg, out=None if ns.quiet else sys.stderr)
    rep["calibration"] = cal
    rep["figures"] = report.spread(
        {
            "calibration.h2load_rps": float(r["h2load_rps"]),
            "calibration.harness_rps": float(r["harness_rps"]),
            "calibration.share": float(r["share"]),
        }
        for r in cal["rounds"]
    )
    print(table.render_calibration(cal))
    _finish(rep, ns, "baseline")
    return 1 if cal["harness_is_bottleneck"] else 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="payswitch bench", usage=USAGE)
    sub = top.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="drive a Gateway and report")
    _add_target(run_p)
    _add_load(run_p)
    _add_output(run_p)
    run_p.add_argument("--repeat", type=int, default=1, help="runs, for the noise of each figure")
    run_p.add_argument("--plot", action="store_true", help="PNG plots beside the report")

    step_p = sub.add_parser("step", help="find the highest rate that holds an objective")
    _add_target(step_p)
    _add_load(step_p)
    _add_output(step_p)
    g = step_p.add_argument_group("steps")
    g.add_argument("--start-rate", type=float, required=True)
    g.add_argument("--step-rate", type=float, required=True)
    g.add_argument("--max-rate", type=float, required=True)
    g.add_argument("--step-duration", type=float, default=10.0, help="seconds per step")
    g.add_argument("--refine", type=int, default=0, help="bisections after the first break")
    g.add_argument(
        "--retries", type=int, default=0, help="tries again of a step that broke, before it counts"
    )
    g.add_argument("--slo-p99-ms", type=float, required=True, help="every RPC's p99 at most")
    g.add_argument("--slo-errors", type=float, default=0.001, help="unexpected outcomes ratio")
    g.add_argument(
        "--then-at",
        type=float,
        metavar="SHARE",
        help="then run open loops at this share of the capacity found (0.5: the figures at "
        "half capacity, measured in the same minutes as the capacity)",
    )
    g.add_argument("--then-runs", type=int, default=3, help="runs at --then-at, a step long each")

    cmp_p = sub.add_parser("compare", help="compare two JSON reports")
    cmp_p.add_argument("a")
    cmp_p.add_argument("b")
    cmp_p.add_argument(
        "--floor",
        type=float,
        default=None,
        help="one noise floor for every figure (a ratio, e.g. 0.05) instead of the stated ones",
    )
    cmp_p.add_argument("--fail-on-worse", action="store_true", help="exit 1 if any got worse")

    base_p = sub.add_parser("baseline", help="echo server + h2load + harness")
    base_p.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    base_p.add_argument("--warmup", type=float, default=2.0)
    base_p.add_argument("--rounds", type=int, default=3)
    base_p.add_argument("--concurrency", type=int, default=32)
    base_p.add_argument("--processes", type=int, default=default_processes())
    base_p.add_argument("--channels", type=int, default=UNARY_CHANNELS)
    base_p.add_argument("--deadline-ms", type=int, default=5000, help="deadline of each call")
    base_p.add_argument("--unary-client", choices=("lean", "grpcio"), default="lean")
    base_p.add_argument("--out", default=None)
    base_p.add_argument("--quiet", action="store_true")

    sub.add_parser("echo-server", help="the bare echo server", add_help=False)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "echo-server":
        return echo_server.main(args[1:])
    ns = parser().parse_args(args)
    try:
        if ns.command == "run":
            return cmd_run(ns, args)
        if ns.command == "step":
            return cmd_step(ns, args)
        if ns.command == "compare":
            return cmd_compare(ns)
        return cmd_baseline(ns, args)
    except (ConfigError, ValueError) as exc:
        print(f"payswitch bench: {exc}", file=sys.stderr)
        return 2
    except (runner.BenchError, h2load.H2loadError) as exc:
        print(f"payswitch bench: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
