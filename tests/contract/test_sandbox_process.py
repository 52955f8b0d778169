"""The sandbox worker as a real process: journal, channel names, flags, graceful SIGTERM."""

from __future__ import annotations

import json
import pathlib
import subprocess
import threading

import grpc
import pytest

from adapters.sandbox import testdata
from adapters.sdk import convert
from adapters.sdk.types import AuthorizeRequest, Card, Money
from payswitch.channel.v1 import channel_service_pb2 as ch
from payswitch.channel.v1 import channel_service_pb2_grpc as ch_grpc
from tests.contract.workers import adapter_command, adapter_process
from tests.support import REPO


def authorize(reference: str, number: str, amount: int = 1000) -> ch.AuthorizeRequest:
    card = Card(number=number, expiry_month=12, expiry_year=2031, cvc="123")
    request = AuthorizeRequest(reference, "m1", Money(amount, "USD"), card, capture=True)
    return convert.authorize_request_to_proto(request)


def journal(path: pathlib.Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_journal_counts_what_reached_the_adapter(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "journal.jsonl"
    with (
        adapter_process("sandbox", "--journal", str(path)) as worker,
        grpc.insecure_channel(worker.target) as channel,
    ):
        stub = ch_grpc.ChannelServiceStub(channel)
        first = stub.Authorize(authorize("a1", testdata.CARD_APPROVE_VISA))
        again = stub.Authorize(authorize("a1", testdata.CARD_APPROVE_VISA))
        declined = stub.Authorize(authorize("a2", testdata.CARD_INSUFFICIENT_FUNDS))
        with pytest.raises(grpc.RpcError):  # refused by the worker: never reaches the adapter
            stub.Authorize(authorize("a3", testdata.CARD_APPROVE_VISA, amount=0))
    assert worker.exit_code == 0
    assert first == again and first.result.status == ch.OPERATION_STATUS_APPROVED
    assert declined.result.raw_code == "51"
    lines = journal(path)
    assert [(x["reference"], x["replay"]) for x in lines] == [
        ("a1", False),
        ("a1", True),
        ("a2", False),
    ]
    assert testdata.CARD_APPROVE_VISA not in path.read_text()


def test_two_sandboxes_serve_as_different_channels() -> None:
    with (
        adapter_process("sandbox") as one,
        adapter_process("sandbox", "--name", "sandbox_b", "--currencies", "CNY") as two,
    ):
        for worker, name, currencies in ((one, "sandbox", 5), (two, "sandbox_b", 1)):
            with grpc.insecure_channel(worker.target) as channel:
                reply = ch_grpc.ChannelServiceStub(channel).Describe(ch.DescribeRequest())
            assert (reply.name, len(reply.currencies)) == (name, currencies)


def test_sigterm_lets_a_call_in_flight_finish(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "journal.jsonl"
    flags = ("--slow-ms", "1500", "--grace-s", "10", "--journal", str(path))
    with (
        adapter_process("sandbox", *flags) as worker,
        grpc.insecure_channel(worker.target) as channel,
    ):
        stub = ch_grpc.ChannelServiceStub(channel)
        answers: list[ch.AuthorizeResponse] = []
        call = threading.Thread(
            target=lambda: answers.append(stub.Authorize(authorize("slow", testdata.CARD_SLOW)))
        )
        call.start()
        while not path.exists() or not path.read_text():  # the call has reached the adapter
            call.join(0.02)
        worker.signal()
        call.join(20)
        assert worker.wait() == 0
    assert [a.result.status for a in answers] == [ch.OPERATION_STATUS_APPROVED]


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--name", "Not-Valid"], "--name"),
        (["--currencies", "dollars"], "--currencies"),
        (["--methods", "cash"], "--methods"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(flags: list[str], named: str) -> None:
    command = adapter_command("sandbox", "--listen", "127.0.0.1:1", *flags)
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert named in done.stderr


def test_address_in_use_exits_1() -> None:
    with adapter_process("sandbox") as worker:
        command = adapter_command("sandbox", "--listen", worker.target)
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "worker failed to start" in done.stderr
