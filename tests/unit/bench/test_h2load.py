"""Reading h2load's summary and framing its gRPC body."""

from __future__ import annotations

import pytest

from bench.baseline import h2load

OUTPUT = """starting benchmark...
spawning thread #0: 1 total client(s). Timing-based test with 1s of warm-up time and 5s of
Warm-up started for thread #0.
progress: 10% of clients started
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 6.00s, 5420.20 req/s, 1.82MB/s
requests: 27101 total, 27165 started, 27101 done, 27101 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 27101 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 9.11MB (9553290) total, 105.94KB (108482) headers (space savings 96.05%)
                     min         max         mean         sd        +/- sd
time for request:      954us     20.66ms      5.87ms      1.32ms    71.84%
time for connect:      264us       264us       264us         0us   100.00%
time to 1st byte:    20.13ms     20.13ms     20.13ms         0us   100.00%
req/s           :    5420.10     5420.10     5420.10        0.00   100.00%
"""


def test_parse_reads_rate_counts_and_request_times() -> None:
    result = h2load.parse(OUTPUT, "h2load ...")
    assert result.rate == 5420.20
    assert result.done == 27101 and result.succeeded == 27101
    assert result.failed == 0 and result.errored == 0
    assert result.mean_us == 5870.0
    assert result.max_us == 20660.0
    assert result.as_dict()["command"] == "h2load ..."


def test_parse_refuses_what_it_cannot_read() -> None:
    with pytest.raises(h2load.H2loadError, match="cannot read"):
        h2load.parse("connect() failed\n")


def test_grpc_frame_is_flag_length_message() -> None:
    assert h2load.grpc_frame(b"abc") == b"\x00\x00\x00\x00\x03abc"


def test_shape_keeps_at_least_the_concurrency_in_flight() -> None:
    assert h2load.shape(32, 1) == (1, 32)
    assert h2load.shape(33, 2) == (2, 17)
    assert h2load.shape(1, 0) == (1, 1)


def test_command_sends_grpc_headers_and_times_in_milliseconds() -> None:
    cmd = h2load.command(
        url="http://127.0.0.1:1/x",
        body_path="/tmp/b",
        seconds=1.5,
        warmup_s=0.5,
        connections=2,
        streams=16,
    )
    assert "1500ms" in cmd and "500ms" in cmd
    assert "content-type: application/grpc" in cmd and "te: trailers" in cmd
    assert cmd[-1] == "http://127.0.0.1:1/x"
