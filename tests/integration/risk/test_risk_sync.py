"""The risk sync against a real Redis set up wrong: the log says what is wrong (not that Redis
is away), now and then rather than every second, and the sync recovers once it is fixed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from switch.risk import RiskEngine
from switch.riskconfig import RiskConfig
from switch.risksync import BLOCK_KEYS, BLOCK_VERSION_KEY, EVENTS_CHANNEL, RELOAD, RiskSync

CARDS = BLOCK_KEYS["card"]
Step = Callable[[aioredis.Redis], Awaitable[object]]


async def _wrong_type(r: aioredis.Redis) -> None:
    await r.set(CARDS, "a string where a hash belongs")


async def _right_type(r: aioredis.Redis) -> None:
    await r.delete(CARDS)


async def _no_block_list_keys(r: aioredis.Redis) -> None:
    await r.execute_command("ACL", "SETUSER", "switch", "on", ">pw", "+@all", "&*")
    await r.execute_command("ACL", "SETUSER", "switch", f"~{BLOCK_VERSION_KEY}")


async def _all_keys(r: aioredis.Redis) -> None:
    await r.execute_command("ACL", "SETUSER", "switch", "~*")


async def _other_password(r: aioredis.Redis) -> None:
    await r.execute_command("ACL", "SETUSER", "switch", "on", ">other", "+@all", "&*", "~*")


async def _its_password(r: aioredis.Redis) -> None:
    await r.execute_command("ACL", "SETUSER", "switch", "resetpass", ">pw")


async def _version_not_a_number(r: aioredis.Redis) -> None:
    await r.set(BLOCK_VERSION_KEY, "v2")


async def _version_a_number(r: aioredis.Redis) -> None:
    await r.set(BLOCK_VERSION_KEY, "2")


async def _block_a_card(admin: aioredis.Redis, engine: RiskEngine) -> None:
    """Block a card as the admin does, and wait (up to 5 s) for the sync to bring it in."""
    await admin.hset(CARDS, "fp_blocked", '{"note": "chargebacks"}')
    await admin.incr(BLOCK_VERSION_KEY)
    for _ in range(50):
        if "fp_blocked" in engine.blocks.cards:
            return
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    ("break_it", "fix_it", "user", "said"),
    [
        (_wrong_type, _right_type, None, (f"HKEYS {CARDS}", "WRONGTYPE")),
        (_no_block_list_keys, _all_keys, "switch", (f"HKEYS {CARDS}", "no permissions")),
        (_other_password, _its_password, "switch", ("AuthenticationError", "password")),
        (_version_not_a_number, _version_a_number, None, (BLOCK_VERSION_KEY, "'v2'")),
    ],
    ids=["wrong-type", "acl-noperm", "wrong-password", "version-not-a-number"],
)
async def test_a_misconfigured_redis_is_logged_as_such_until_fixed(
    redis_server,
    caplog: pytest.LogCaptureFixture,
    break_it: Step,
    fix_it: Step,
    user: str | None,
    said: tuple[str, str],
) -> None:
    admin = aioredis.Redis.from_url(redis_server.url)
    client = aioredis.Redis.from_url(redis_server.url, username=user, password=user and "pw")
    engine = RiskEngine(RiskConfig())
    sync = RiskSync(client=client, engine=engine, on_reload=lambda source: None)
    try:
        await break_it(admin)
        with caplog.at_level(logging.INFO, logger="payswitch.risksync"):
            await sync.start()
            await asyncio.sleep(3.5)  # three tries or four, a second apart
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert len(errors) == 1, "said once, not at every try"
            assert all(part in errors[0].error for part in said), errors[0].error  # type: ignore[attr-defined]
            assert "cannot reach Redis" not in caplog.text, "not taken for an outage"

            await fix_it(admin)
            await _block_a_card(admin, engine)
        assert engine.blocks.cards == frozenset({"fp_blocked"}), "the sync recovered"
        assert "risk sync reaches Redis again" in caplog.text
    finally:
        await sync.stop()
        await client.aclose()
        await admin.aclose()


async def test_a_failing_reload_is_logged_and_the_sync_goes_on(
    redis_server, caplog: pytest.LogCaptureFixture
) -> None:
    admin = aioredis.Redis.from_url(redis_server.url)
    engine = RiskEngine(RiskConfig())
    reloads: list[str] = []

    def on_reload(source: str) -> None:
        reloads.append(source)
        if len(reloads) == 1:
            raise RuntimeError("the new config could not be applied")

    client = aioredis.Redis.from_url(redis_server.url)
    sync = RiskSync(client=client, engine=engine, on_reload=on_reload)
    try:
        with caplog.at_level(logging.INFO, logger="payswitch.risksync"):
            await sync.start()
            await asyncio.sleep(0.3)  # subscribed
            await admin.publish(EVENTS_CHANNEL, RELOAD)
            for _ in range(50):
                if reloads:
                    break
                await asyncio.sleep(0.1)
            await _block_a_card(admin, engine)
        assert engine.blocks.cards == frozenset({"fp_blocked"}), "the sync went on"
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [r.getMessage() for r in errors] == [
            "risk sync failed; block lists stay as they were, retrying"
        ]
        assert "the new config could not be applied" in caplog.text
        assert "Redis refuses" not in caplog.text
    finally:
        await sync.stop()
        await client.aclose()
        await admin.aclose()


async def test_stop_ends_the_sync_whenever_it_comes(redis_server) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        for i in range(12):
            sync = RiskSync(client=client, engine=RiskEngine(RiskConfig()), on_reload=print)
            await sync.start()
            await asyncio.sleep(0.3 + i * 0.1)  # within and across the one-second polls
            # A switch stopping must not wait on its risk sync forever.
            await asyncio.wait_for(sync.stop(), 10)
    finally:
        await client.aclose()


async def test_an_entry_that_is_not_utf8_is_left_out_and_logged(
    redis_server, caplog: pytest.LogCaptureFixture
) -> None:
    admin = aioredis.Redis.from_url(redis_server.url)
    client = aioredis.Redis.from_url(redis_server.url)
    engine = RiskEngine(RiskConfig())
    sync = RiskSync(client=client, engine=engine, on_reload=lambda source: None)
    try:
        await admin.hset(CARDS, b"fp_\xff\xfe", "{}")  # a hand edit in Redis
        with caplog.at_level(logging.INFO, logger="payswitch.risksync"):
            await sync.start()
            await _block_a_card(admin, engine)
        assert engine.blocks.cards == frozenset({"fp_blocked"}), "not read as 'fp_\\ufffd\\ufffd'"
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        # Once per load (at start, and again when the version moved).
        assert [r.getMessage() for r in warnings] == [
            "ignoring a block list entry that is not UTF-8"
        ] * 2
        assert warnings[0].list == CARDS  # type: ignore[attr-defined]
        assert "fp_\\xff\\xfe" in warnings[0].value  # type: ignore[attr-defined]
    finally:
        await sync.stop()
        await client.aclose()
        await admin.aclose()
