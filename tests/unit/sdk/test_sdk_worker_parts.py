"""The worker's parts without a socket: the event hub, log masking, the common flags."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging

import pytest

from adapters.sdk.adapter import ChannelAdapter
from adapters.sdk.logs import JsonFormatter, mask_digits
from adapters.sdk.types import ChannelEvent, OperationResult, OperationType
from adapters.sdk.worker import EventHub, worker_main


def event(n: int) -> ChannelEvent:
    return ChannelEvent(f"r{n}", OperationType.AUTHORIZE, OperationResult.approved())


async def take(stream: object, count: int) -> list[str]:
    it = aiter(stream)  # type: ignore[call-overload]
    return [(await anext(it)).reference for _ in range(count)]


async def test_backlog_is_bounded_and_goes_to_the_first_stream() -> None:
    hub = EventHub(buffer=3)
    for n in range(5):
        hub.publish(event(n))
    assert hub.dropped == 2
    first = hub.subscribe()
    assert await take(first, 3) == ["r2", "r3", "r4"]
    second = hub.subscribe()
    nxt = asyncio.ensure_future(take(second, 1))
    await asyncio.sleep(0)
    hub.publish(event(9))
    assert await take(first, 1) == ["r9"]
    assert await nxt == ["r9"]
    hub.close()
    assert [e async for e in first] == []
    assert [e async for e in second] == []


async def test_slow_stream_loses_its_oldest_event_only() -> None:
    hub = EventHub(buffer=2)
    stream = hub.subscribe()
    started = asyncio.ensure_future(take(stream, 1))
    await asyncio.sleep(0)
    hub.publish(event(0))
    assert await started == ["r0"]
    for n in range(1, 4):
        hub.publish(event(n))
    assert hub.dropped == 1
    assert await take(stream, 2) == ["r2", "r3"]
    hub.close()
    hub.publish(event(5))
    assert hub.dropped == 2


def test_mask_digits_keeps_bin_and_last_four() -> None:
    assert mask_digits("card 4242424242424242 ok") == "card 424242******4242 ok"
    assert mask_digits("code 286512345678901234") == "code 286512********1234"
    assert mask_digits("amount 1000 ref 12345678901") == "amount 1000 ref 12345678901"


def test_json_log_line_masks_card_numbers_in_messages_and_fields() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.sdk.logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("declined %s", "5555555555554444", extra={"pan": "4000000000000002"})
    finally:
        logger.removeHandler(handler)
    line = json.loads(out.getvalue())
    assert line["msg"] == "declined 555555******4444"
    assert line["pan"] == "400000******0002"
    assert line["level"] == "WARNING"


def _never_built(args: argparse.Namespace) -> ChannelAdapter:
    raise AssertionError("build must not run")


def _bad_flag(args: argparse.Namespace) -> ChannelAdapter:
    raise ValueError(f"--colour: must be red or blue, got {args.colour}")


def test_worker_main_help_and_bad_flags_return_instead_of_exiting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--colour", default="red")

    assert worker_main(["--help"], _never_built, add_arguments=add) == 0
    assert "--colour" in capsys.readouterr().out
    assert worker_main([], _never_built) == 2
    assert "--listen" in capsys.readouterr().err
    args = ["--listen", "127.0.0.1:0", "--colour", "green"]
    assert worker_main(args, _bad_flag, add_arguments=add, prog="x") == 2
    assert "x: --colour: must be red or blue, got green" in capsys.readouterr().err
