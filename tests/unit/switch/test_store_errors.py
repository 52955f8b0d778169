"""Error replies of a Redis that is up but not serving are Redis down for the switch, and are
answered as such (UNAVAILABLE); an error of the switch's own scripts is not."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import redis.exceptions

from switch.errors import StoreUnavailable
from switch.pipelined import ReplyError
from switch.store import Store


class _Answering:
    """A pipelined connection whose Redis answers every script with one error reply."""

    def __init__(self, reply: str) -> None:
        self._reply = reply

    def register(self, source: str, *, batched: bool = False) -> str:
        return hashlib.sha1(source.encode()).hexdigest()

    async def evalsha(self, sha: str, keys: list[str], args: list[Any]) -> Any:
        raise ReplyError(self._reply)


class _Refusing:
    """redis-py's client, for the commands that go through it, raising what it raises."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        raise self._error


def _store(reply: str, error: Exception | None = None) -> Store:
    return Store(
        client=_Refusing(error or RuntimeError("not reached")),  # type: ignore[arg-type]
        fast=_Answering(reply),  # type: ignore[arg-type]
        idempotency_ttl_s=60,
        payment_ttl_s=60,
        journal_max_len=100,
        in_flight_grace_ms=1000,
    )


@pytest.mark.parametrize(
    "reply",
    [
        "LOADING Redis is loading the dataset in memory",
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        "READONLY You can't write against a read only replica.",
        "TRYAGAIN Multiple keys request during rehashing of slot",
        "CLUSTERDOWN The cluster is down",
        "NOREPLICAS Not enough good replicas to write. script: 119b0beb, on @user_script:1.",
        # A batch of calls refused as a whole: the wrapper quotes Redis's reply.
        "a batch of 3 calls got the reply ReplyError('LOADING Redis is loading the dataset')",
    ],
)
async def test_a_redis_not_serving_is_a_redis_down(reply: str) -> None:
    with pytest.raises(StoreUnavailable, match="unavailable; nothing was sent to any channel"):
        await _store(reply).lease_due("m_1", lease_ms=1000, batch=10)


async def test_a_full_redis_says_so() -> None:
    with pytest.raises(StoreUnavailable, match="full"):
        await _store("OOM command not allowed when used memory > 'maxmemory'.").lease_due(
            "m_1", lease_ms=1000, batch=10
        )


async def test_an_error_of_a_script_itself_is_not_an_outage() -> None:
    with pytest.raises(ReplyError, match="user_script"):
        await _store("ERR user_script:3: attempt to compare nil with number").lease_due(
            "m_1", lease_ms=1000, batch=10
        )


# redis-py turns most of these replies into classes of their own and drops the code from the
# message (redis/_parsers/base.py); BUSY and NOREPLICAS stay ResponseErrors with their code.
@pytest.mark.parametrize(
    "error",
    [
        redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
        redis.exceptions.ResponseError("BUSY Redis is busy running a script."),
        redis.exceptions.ResponseError("NOREPLICAS Not enough good replicas to write."),
        redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
        redis.exceptions.MasterDownError("Link with MASTER is down"),
        redis.exceptions.TryAgainError("Multiple keys request during rehashing of slot"),
        redis.exceptions.ClusterDownError("The cluster is down"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_redis_pys_commands_meet_the_same_rule(error: Exception) -> None:
    with pytest.raises(StoreUnavailable, match="unavailable; nothing was sent to any channel"):
        await _store("", error).get("m_1", "pay_1")


async def test_redis_pys_other_errors_stay_errors() -> None:
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        await _store("", redis.exceptions.ResponseError("WRONGTYPE Operation")).get("m_1", "p")
