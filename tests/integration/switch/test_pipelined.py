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


# A script that counts its calls per key and fails on request: ARGV[1] 'fail' raises.
COUNTER = """
if ARGV[1] == 'fail' then return redis.error_reply('ERR asked to fail') end
if ARGV[1] == 'raise' then error('raised in the script') end
if ARGV[1] == 'nil' then return nil end
local n = redis.call('INCR', KEYS[1])
return {KEYS[1], n, ARGV[2]}
"""


async def script_calls(r: PipelinedRedis) -> int:
    stats = await r.execute("INFO", "commandstats")
    for line in stats.decode().splitlines():
        if line.startswith("cmdstat_evalsha:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


async def test_a_batched_scripts_calls_of_one_turn_reach_redis_together_and_answer_each_caller(
    redis_server,
):
    r = client(redis_server.url)
    try:
        sha = r.register(COUNTER, batched=True)
        assert await r.evalsha(sha, ["{m:1}:warm"], ["go", "0"])  # loads the script
        before = await script_calls(r)
        replies = await asyncio.gather(
            *(r.evalsha(sha, [f"{{m:1}}:k{i % 3}"], ["go", str(i)]) for i in range(90))
        )
        # Each caller gets its own reply: its key, the count when it ran, its own argument.
        assert [reply[2] for reply in replies] == [str(i).encode() for i in range(90)]
        for k in range(3):
            counts = [reply[1] for i, reply in enumerate(replies) if i % 3 == k]
            assert counts == list(range(1, 31))  # in the order the callers called
        # 90 calls in one turn: three script calls of at most 32, not ninety.
        assert await script_calls(r) - before == 3
    finally:
        await r.close()


async def test_a_failing_call_in_a_batch_fails_alone(redis_server):
    r = client(redis_server.url)
    try:
        sha = r.register(COUNTER, batched=True)
        outcomes = await asyncio.gather(
            r.evalsha(sha, ["{m:1}:a"], ["go", "first"]),
            r.evalsha(sha, ["{m:1}:a"], ["fail", ""]),
            r.evalsha(sha, ["{m:1}:a"], ["raise", ""]),
            r.evalsha(sha, ["{m:1}:a"], ["nil", ""]),
            r.evalsha(sha, ["{m:1}:a"], ["go", "last"]),
            return_exceptions=True,
        )
        assert outcomes[0] == [b"{m:1}:a", 1, b"first"]
        assert isinstance(outcomes[1], ReplyError) and "asked to fail" in str(outcomes[1])
        assert isinstance(outcomes[2], ReplyError) and "raised in the script" in str(outcomes[2])
        assert outcomes[3] is None
        assert outcomes[4] == [b"{m:1}:a", 2, b"last"]  # the calls after a failure still ran
        assert await r.execute("GET", "{m:1}:a") == b"2"
    finally:
        await r.close()


async def test_batched_calls_survive_a_script_flush_and_a_lone_call_is_answered(redis_server):
    r = client(redis_server.url)
    try:
        sha = r.register(COUNTER, batched=True)
        assert await r.evalsha(sha, ["{m:1}:b"], ["go", "x"]) == [b"{m:1}:b", 1, b"x"]
        await r.execute("SCRIPT", "FLUSH")
        replies = await asyncio.gather(
            *(r.evalsha(sha, ["{m:1}:b"], ["go", "y"]) for _ in range(4))
        )
        assert [reply[1] for reply in replies] == [2, 3, 4, 5]
        await r.execute("SCRIPT", "FLUSH")
        assert await r.evalsha(sha, ["{m:1}:b"], ["go", "z"]) == [b"{m:1}:b", 6, b"z"]
    finally:
        await r.close()


async def test_batched_calls_in_flight_when_redis_goes_away_fail_with_connection_error(
    redis_server,
):
    r = client(redis_server.url)
    try:
        sha = r.register(COUNTER, batched=True)
        assert await r.evalsha(sha, ["{m:1}:c"], ["go", ""])
        redis_server.stop()
        outcomes = await asyncio.gather(
            *(r.evalsha(sha, ["{m:1}:c"], ["go", ""]) for _ in range(5)), return_exceptions=True
        )
        assert all(isinstance(o, ConnectionError) for o in outcomes), outcomes
        redis_server.start()
        assert await r.evalsha(sha, ["{m:1}:c"], ["go", ""]) == [b"{m:1}:c", 1, b""]
    finally:
        await r.close()


async def test_an_argument_redis_cannot_take_fails_its_caller_alone(redis_server):
    r = client(redis_server.url)
    try:
        sha = r.register(COUNTER, batched=True)
        outcomes = await asyncio.gather(
            r.evalsha(sha, ["{m:1}:d"], ["go", "a"]),
            r.evalsha(sha, ["{m:1}:d"], ["go", None]),
            r.evalsha(sha, ["{m:1}:d"], ["go", "c"]),
            return_exceptions=True,
        )
        assert outcomes[0] == [b"{m:1}:d", 1, b"a"]
        assert isinstance(outcomes[1], TypeError)
        assert outcomes[2] == [b"{m:1}:d", 2, b"c"]
        # The connection goes on carrying commands.
        assert await r.execute("PING") == b"PONG"
        assert await r.evalsha(sha, ["{m:1}:d"], ["go", "e"]) == [b"{m:1}:d", 3, b"e"]
    finally:
        await r.close()


async def test_a_call_cancelled_before_it_is_sent_does_not_run(redis_server):
    r = client(redis_server.url)
    try:
        sha = r.register(COUNTER, batched=True)
        assert await r.evalsha(sha, ["{m:1}:e"], ["go", ""])  # connected
        kept = asyncio.ensure_future(r.evalsha(sha, ["{m:1}:e"], ["go", "kept"]))
        dropped = asyncio.ensure_future(r.evalsha(sha, ["{m:1}:e"], ["go", "dropped"]))
        await asyncio.sleep(0)  # both queued for this turn's flush
        dropped.cancel()
        assert await kept == [b"{m:1}:e", 2, b"kept"]
        assert await r.execute("GET", "{m:1}:e") == b"2"  # the cancelled call never ran
    finally:
        await r.close()
