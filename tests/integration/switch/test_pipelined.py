"""The pipelined hot-path connection against a real redis-server: order, scripts, outages."""

from __future__ import annotations

import asyncio

import pytest

from switch.pipelined import PipelinedRedis, ReplyError


def client(url: str, timeout_s: float = 1.0) -> PipelinedRedis:
    return PipelinedRedis(url, timeout_s=timeout_s, connect_timeout_s=1.0)


async def test_many_commands_in_flight_get_their_own_replies(redis_server):
    r = client(redis_server.url)
    try:
        await asyncio.gather(*(r.execute("SET", f"k{i}", i) for i in range(500)))
        values = await asyncio.gather(*(r.execute("GET", f"k{i}") for i in range(500)))
        assert values == [str(i).encode() for i in range(500)]
        with pytest.raises(ReplyError):
            await r.execute("INCR", "no", "such", "arity")
        assert await r.execute("PING") == b"PONG"  # an error reply does not shift the others
    finally:
        await r.close()


async def test_a_unix_socket_url_reaches_the_same_server_and_database(redis_server):
    over_tcp, over_unix = client(redis_server.url), client(redis_server.unix_url)
    other_db = client(redis_server.unix_url.replace("db=0", "db=3"))
    try:
        await over_unix.execute("SET", "k", "by-unix")
        await other_db.execute("SET", "k", "in-db-3")
        assert await over_tcp.execute("GET", "k") == b"by-unix"
        assert await other_db.execute("GET", "k") == b"in-db-3"
    finally:
        for r in (over_tcp, over_unix, other_db):
            await r.close()


async def test_a_missing_unix_socket_is_a_clear_connection_error(tmp_path):
    r = client(f"unix://{tmp_path}/no-redis.sock")
    with pytest.raises(ConnectionError, match=r"no-redis\.sock"):
        await r.execute("PING")
    await r.close()


async def test_a_script_unknown_to_redis_is_loaded_on_first_use(redis_server):
    r = client(redis_server.url)
    try:
        sha = r.register("return {KEYS[1], ARGV[1]}")
        assert await r.evalsha(sha, ["a"], ["b"]) == [b"a", b"b"]
        await r.execute("SCRIPT", "FLUSH")
        assert await r.evalsha(sha, ["c"], ["d"]) == [b"c", b"d"]
    finally:
        await r.close()


async def test_outages_fail_fast_and_the_next_command_reconnects(redis_server):
    r = client(redis_server.url)
    try:
        assert await r.execute("PING") == b"PONG"
        redis_server.stop()
        with pytest.raises(ConnectionError):
            await r.execute("PING")
        redis_server.start()
        assert await r.execute("PING") == b"PONG"
    finally:
        await r.close()


async def test_a_reply_that_does_not_come_in_time_is_a_timeout_and_drops_the_connection(
    redis_server,
):
    r = client(redis_server.url, timeout_s=0.2)
    try:
        slow = asyncio.ensure_future(r.execute("BLPOP", "nothing-here", "0.5"))
        with pytest.raises(TimeoutError):
            await slow
        assert await r.execute("PING") == b"PONG"
    finally:
        await r.close()
