"""Small closed- and open-loop runs against real servers, checked by what they counted."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import pytest

from bench import histo, runner
from bench.config import Load, RunConfig, Target
from bench.scenarios import parse_mix
from bench.transport import REOPEN_PAUSE_S
from tests.conftest import stop_process
from tests.integration.bench.conftest import API_KEY, FAKE_GATEWAY, start_server


def config(
    address: str,
    *,
    scenario: str = "authorize",
    api_key: str | None = None,
    tls: bool = False,
    ca: str | None = None,
    **load: Any,
) -> RunConfig:
    load.setdefault("warmup_s", 0.3)
    load.setdefault("interval_s", 0.5)
    if "requests" in load:
        load.setdefault("duration_s", None)
    return RunConfig(
        target=Target(address=address, api_key=api_key, tls=tls, ca_file=ca, connect_timeout_s=5.0),
        load=Load(**load),
        scenario=parse_mix(scenario),
    )


@pytest.mark.parametrize("client", ["lean", "grpcio"])
def test_closed_loop_mix_is_counted_by_operation_and_status(
    fake_gateway: Callable[..., str], client: str
) -> None:
    address = fake_gateway("--api-key", API_KEY)
    cfg = config(
        address,
        scenario="mixed",
        api_key=API_KEY,
        mode="closed",
        concurrency=8,
        requests=400,
        processes=2,
        unary_client=client,
    )
    result = runner.run(cfg, out=None)
    ops = result["operations"]

    # Two processes' histograms merged: every one of the 400 measured actions is there once.
    assert result["rpcs"]["Authorize"]["calls"] == 400
    assert result["rpcs"]["Authorize"]["latency_us"]["count"] == 400
    assert histo.decode(result["rpcs"]["Authorize"]["histogram"]).get_total_count() == 400
    # Bad requests are refused, and that is what they are for: not counted as errors.
    assert set(ops["Authorize/bad"]["codes"]) == {"INVALID_ARGUMENT"}
    assert result["errors"] == 0
    assert ops["Authorize/decline"]["statuses"] == {"DECLINED": ops["Authorize/decline"]["calls"]}
    assert ops["Authorize/authorize"]["statuses"] == {
        "CAPTURED": ops["Authorize/authorize"]["calls"]
    }
    # Follow-ups act on the payment the first call made.
    capture = ops["Capture/authorize_capture"]
    assert capture["statuses"] == {"CAPTURED": ops["Authorize/authorize_capture"]["calls"]}
    refund = ops["Refund/refund"]
    assert refund["statuses"] == {"REFUNDED": ops["Authorize/refund"]["calls"]}
    # A replay gets the stored answer of the key's first call.
    assert ops["Authorize/replay"]["codes"] == {"OK": ops["Authorize/replay"]["calls"]}
    assert ops["Authorize/replay"]["statuses"] == {"CAPTURED": ops["Authorize/replay"]["calls"]}
    # The switch's own share of the latency comes from the trailer, in its own histogram.
    assert result["rpcs"]["Authorize"]["overhead_us"]["p50"] == 137
    assert result["rpcs"]["Authorize"]["overhead_us"]["count"] == 400


def test_open_loop_sends_exactly_the_scheduled_requests(echo_address: str) -> None:
    cfg = config(echo_address, mode="open", rate=400.0, requests=200, processes=2)
    result = runner.run(cfg, out=None)
    assert result["offered_rate"] == 400.0
    assert result["rpcs"]["Authorize"]["calls"] == 200
    assert result["rpcs"]["Authorize"]["codes"] == {"OK": 200}
    # Each measured request's lag behind its intended send time is recorded.
    assert result["send_lag_us"]["count"] == 200


def test_duration_run_excludes_warm_up_and_keeps_a_timeline(echo_address: str) -> None:
    cfg = config(echo_address, mode="closed", concurrency=4, duration_s=1.0, warmup_s=0.5)
    result = runner.run(cfg, out=None)
    assert result["measure_s"] == 1.0
    assert result["calls"] > 0
    assert result["errors"] == 0
    phases = {row["phase"] for row in result["timeline"]}
    assert phases == {"warm-up", "measure"}
    # Warm-up calls appear in the timeline but not in the measured figures.
    timeline_calls = sum(
        row["rpcs"]["Authorize"]["calls"]
        for row in result["timeline"]
        if "Authorize" in row["rpcs"]
    )
    assert timeline_calls > result["rpcs"]["Authorize"]["calls"]


def test_wrong_api_key_is_counted_as_unauthenticated(fake_gateway: Callable[..., str]) -> None:
    address = fake_gateway("--api-key", API_KEY)
    cfg = config(address, api_key="not-the-key", mode="closed", concurrency=2, requests=20)
    result = runner.run(cfg, out=None)
    assert result["rpcs"]["Authorize"]["codes"] == {"UNAUTHENTICATED": 20}
    assert result["errors"] == 20
    # Refusals are no throughput, and their latency is kept apart from that of payments.
    assert result["rate"] == result["rpcs"]["Authorize"]["rate"] == 0.0
    assert result["rpcs"]["Authorize"]["latency_us"]["count"] == 0
    assert result["rpcs"]["Authorize"]["error_latency_us"]["count"] == 20


@pytest.mark.parametrize("client", ["lean", "grpcio"])
def test_tls_target_with_its_ca(
    fake_gateway: Callable[..., str], tls_files: tuple[str, str], client: str
) -> None:
    cert, key = tls_files
    address = fake_gateway("--cert", cert, "--key", key)
    cfg = config(
        address, tls=True, ca=cert, mode="closed", concurrency=2, requests=20, unary_client=client
    )
    result = runner.run(cfg, out=None)
    assert result["rpcs"]["Authorize"]["codes"] == {"OK": 20}


def test_tls_target_without_its_ca_is_refused_clearly(
    fake_gateway: Callable[..., str], tls_files: tuple[str, str]
) -> None:
    cert, key = tls_files
    address = fake_gateway("--cert", cert, "--key", key)
    cfg = config(address, tls=True, mode="closed", concurrency=2, requests=20)
    with pytest.raises(runner.BenchError, match=r"could not connect.*CERTIFICATE_VERIFY_FAILED"):
        runner.run(cfg, out=None)


def test_a_server_that_goes_away_mid_run_is_counted_unavailable() -> None:
    proc, address = start_server(["-m", "bench.baseline", "--listen", "127.0.0.1:0"])
    stopper = threading.Timer(1.0, stop_process, args=(proc,))
    stopper.start()
    try:
        cfg = config(address, mode="closed", concurrency=8, duration_s=2.5, warmup_s=0.2)
        result = runner.run(cfg, out=None)
    finally:
        stopper.cancel()
        stop_process(proc)
        assert proc.stdout is not None
        proc.stdout.close()
    codes = result["rpcs"]["Authorize"]["codes"]
    assert codes["OK"] > 0
    assert codes["UNAVAILABLE"] > 0
    # Calls in flight when it stopped were cancelled by the server (RST_STREAM CANCEL).
    assert set(codes) <= {"OK", "UNAVAILABLE", "CANCELLED"}
    assert result["errors"] == codes["UNAVAILABLE"] + codes.get("CANCELLED", 0)


def run_across_a_restart(server: list[str], cfg: RunConfig, at_s: float) -> dict[str, Any]:
    """`cfg`'s run against the server started by `server` (a command ending in --listen), which
    is stopped `at_s` seconds into the run and started again on the same port."""
    proc, address = start_server([*server, "127.0.0.1:0"])
    servers = [proc]

    def restart() -> None:
        stop_process(servers[0])
        servers.append(start_server([*server, address])[0])

    restarter = threading.Timer(at_s, restart)
    restarter.start()
    try:
        target = dataclasses.replace(cfg.target, address=address)
        result = runner.run(dataclasses.replace(cfg, target=target), out=None)
    finally:
        restarter.cancel()
        restarter.join()
        for one in servers:
            stop_process(one)
            assert one.stdout is not None
            one.stdout.close()
    assert len(servers) == 2, "the server was restarted during the run"
    return result


def answered_after(result: dict[str, Any], t_s: float) -> int:
    """Calls with the expected outcome in the timeline's intervals ending at `t_s` or later."""
    late = [row["rpcs"].get("Authorize", {}) for row in result["timeline"] if row["t_s"] >= t_s]
    return sum(r.get("calls", 0) - r.get("errors", 0) for r in late)


def test_the_lean_client_reconnects_to_a_server_that_restarted_mid_run() -> None:
    cfg = config("", mode="closed", concurrency=8, duration_s=3.0, warmup_s=0.2)
    result = run_across_a_restart(["-m", "bench.baseline", "--listen"], cfg, at_s=1.0)
    codes = result["rpcs"]["Authorize"]["codes"]
    assert codes.get("UNAVAILABLE", 0) + codes.get("CANCELLED", 0) > 0, "the restart was seen"
    # Intervals well after the restart: calls answered OK again over a new connection.
    assert answered_after(result, 2.5) > 0


@pytest.mark.parametrize("transport", ["stream", "batch"])
def test_a_stream_that_ended_is_opened_again_without_spinning(transport: str) -> None:
    callers, run_s = 8, 4.0
    cfg = config(
        "",
        mode="closed",
        concurrency=callers,
        duration_s=run_s - 0.2,
        warmup_s=0.2,
        transport=transport,
        streams=2,
        pool_rate=30_000,  # batches go fast: requests enough for the whole run
    )
    result = run_across_a_restart([str(FAKE_GATEWAY), "--listen"], cfg, at_s=1.0)
    codes = result["rpcs"]["Authorize"]["codes"]
    failed = sum(n for code, n in codes.items() if code != "OK")
    assert failed > 0, "the restart was seen"
    # The streams were opened again once the server was back: calls answered OK again.
    assert answered_after(result, 3.5) > 0
    # A request that meets a stream which cannot be opened again fails after a pause, not at
    # once: each caller fails at most once per pause (and once more with the stream it was on).
    assert failed <= callers * (run_s / REOPEN_PAUSE_S + 1)


def test_unreachable_target_fails_with_a_clear_error() -> None:
    from tests.conftest import free_port

    cfg = config(f"127.0.0.1:{free_port()}", mode="closed", concurrency=1, requests=1)
    cfg = RunConfig(
        target=Target(address=cfg.target.address, connect_timeout_s=0.5),
        load=cfg.load,
        scenario=cfg.scenario,
    )
    with pytest.raises(runner.BenchError, match="could not connect"):
        runner.run(cfg, out=None)


def test_stream_transport_answers_every_request_by_id(
    fake_gateway: Callable[..., str],
) -> None:
    address = fake_gateway("--api-key", API_KEY)
    cfg = config(
        address,
        scenario="mixed",
        api_key=API_KEY,
        mode="closed",
        concurrency=8,
        requests=300,
        processes=1,
        channels=2,
        transport="stream",
        streams=2,
    )
    result = runner.run(cfg, out=None)
    ops = result["operations"]
    assert result["rpcs"]["Authorize"]["calls"] == 300
    # A refusal on the stream comes back as the unary RPC's status, under the request's id.
    assert set(ops["Authorize/bad"]["codes"]) == {"INVALID_ARGUMENT"}
    assert ops["Authorize/decline"]["statuses"] == {"DECLINED": ops["Authorize/decline"]["calls"]}
    refund = ops["Refund/refund"]
    assert refund["statuses"] == {"REFUNDED": ops["Authorize/refund"]["calls"]}
    assert result["errors"] == 0


def test_batch_transport_answers_every_request_by_id(fake_gateway: Callable[..., str]) -> None:
    address = fake_gateway("--api-key", API_KEY)
    cfg = config(
        address,
        scenario="mixed",
        api_key=API_KEY,
        mode="closed",
        concurrency=32,
        requests=400,
        processes=1,
        transport="batch",
        streams=2,
    )
    result = runner.run(cfg, out=None)
    ops = result["operations"]
    assert result["rpcs"]["Authorize"]["calls"] == 400
    assert set(ops["Authorize/bad"]["codes"]) == {"INVALID_ARGUMENT"}
    assert ops["Authorize/decline"]["statuses"] == {"DECLINED": ops["Authorize/decline"]["calls"]}
    assert result["errors"] == 0


def test_stream_transport_against_the_echo_server(echo_address: str) -> None:
    cfg = config(
        echo_address, mode="open", rate=300.0, requests=150, processes=1, transport="stream"
    )
    result = runner.run(cfg, out=None)
    assert result["rpcs"]["Authorize"]["codes"] == {"OK": 150}
    assert result["rpcs"]["Authorize"]["statuses"] == {"CAPTURED": 150}


def test_stream_refused_at_the_door_counts_every_request(
    fake_gateway: Callable[..., str],
) -> None:
    address = fake_gateway("--api-key", API_KEY)
    cfg = config(
        address, api_key="wrong", mode="closed", concurrency=4, requests=40, transport="stream"
    )
    result = runner.run(cfg, out=None)
    assert result["rpcs"]["Authorize"]["codes"] == {"UNAUTHENTICATED": 40}


def test_a_replay_waits_for_its_original_to_be_answered(fake_gateway: Callable[..., str]) -> None:
    # Each new authorization takes 1 s, ten times the 0.1 s (64 requests) after its original
    # that a replay is due: sent then, it would meet "key in progress" (ABORTED).
    address = fake_gateway("--authorize-ms", "1000")
    cfg = config(address, scenario="replay", mode="open", rate=640.0, requests=640, warmup_s=0)
    result = runner.run(cfg, out=None)
    replays = result["operations"]["Authorize/replay"]
    assert replays["calls"] > 0
    # The stored answer of the original, as a caller who repeats a request it had answered gets.
    assert replays["codes"] == {"OK": replays["calls"]}
    assert replays["statuses"] == {"CAPTURED": replays["calls"]}
    assert result["errors"] == 0


def test_waits_for_a_free_slot_are_told_apart_from_the_generators_lag(
    fake_gateway: Callable[..., str],
) -> None:
    # One call in flight at a time, each 50 ms, 100 due each second: request k waits about
    # k x 40 ms for the slot; the generator itself is not late for that.
    address = fake_gateway("--authorize-ms", "50")
    cfg = config(address, mode="open", rate=100.0, requests=40, max_inflight=1, warmup_s=0)
    result = runner.run(cfg, out=None)
    wait, lag = result["slot_wait_us"], result["send_lag_us"]
    assert wait["count"] == lag["count"] == 40
    assert wait["max"] >= 1_000_000  # the 40th waited 39 x 50 ms - 39 x 10 ms at the least
    assert lag["p99"] < wait["p99"]
