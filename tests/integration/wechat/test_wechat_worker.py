"""`payswitch adapter wechat` and the simulator as real processes, over ChannelService gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from adapters.sdk.conformance.client import ChannelClient
from adapters.sdk.types import ChannelEvent, DeclineCode, OperationStatus, OperationType
from tests.contract.workers import adapter_process
from tests.integration.alipay.alipaykit import MERCHANT, ref, refund, void
from tests.integration.wechat.wechatkit import (
    APPID,
    MCHID,
    KeySet,
    SimulatorProcess,
    authorize,
    code,
)
from tests.support import free_port

APPROVED, DECLINED, PENDING = (
    OperationStatus.APPROVED,
    OperationStatus.DECLINED,
    OperationStatus.PENDING,
)
AUTH = OperationType.AUTHORIZE


def worker_flags(sim: SimulatorProcess, *extra: str, apiv3: str = "") -> list[str]:
    return [
        "--api-base", sim.api_base,
        "--mchid", MCHID,
        "--appid", APPID,
        "--merchant-private-key", sim.keys.path("merchant_private"),
        "--platform-public-key", sim.keys.path("platform_public"),
        "--apiv3-key", apiv3 or sim.keys.path("apiv3.key"),
        "--notify-listen", f"127.0.0.1:{free_port()}",
        "--timeout-s", "2",
        # No polling: what settles a pending payment here is the platform's notification.
        "--poll-interval-s", "0",
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def worker(simulator: SimulatorProcess) -> Iterator[str]:
    with adapter_process("wechat", *worker_flags(simulator)) as process:
        yield process.target


@pytest.fixture
async def client(worker: str) -> AsyncIterator[ChannelClient]:
    async with ChannelClient(worker) as c:
        yield c


class Watch:
    """An open WatchEvents stream whose events a test takes one by one."""

    def __init__(self, client: ChannelClient) -> None:
        self._ready = asyncio.Event()
        self._stream = client.watch(self._ready)
        self._next: asyncio.Future[ChannelEvent] | None = None

    async def open(self) -> Watch:
        self._next = asyncio.ensure_future(anext(self._stream))
        await asyncio.wait_for(self._ready.wait(), 5)
        return self

    async def next(self, timeout_s: float = 10.0) -> ChannelEvent:
        assert self._next is not None
        event = await asyncio.wait_for(self._next, timeout_s)
        self._next = asyncio.ensure_future(anext(self._stream))
        return event

    async def close(self) -> None:
        if self._next is not None:
            self._next.cancel()
            await asyncio.gather(self._next, return_exceptions=True)
        await self._stream.aclose()


async def test_payment_partial_refund_and_void_over_grpc(client: ChannelClient) -> None:
    paid = ref("pay")
    assert (await client.authorize(authorize(paid, code("0000"), 10000))).status is APPROVED
    assert (await client.refund(refund(ref("rf"), paid, 2500, 10000))).status is APPROVED
    declined = await client.authorize(authorize(ref("no"), code("1014")))
    assert (declined.status, declined.decline_code) == (DECLINED, DeclineCode.INVALID_PAYMENT_CODE)
    other = ref("pay2")
    await client.authorize(authorize(other, code("0000")))
    assert (await client.void(void(ref("void"), other))).status is APPROVED


async def test_notifications_reach_watch_events_once(
    client: ChannelClient, simulator: SimulatorProcess
) -> None:
    watch = await Watch(client).open()
    try:
        a, b = ref("a"), ref("b")
        assert (await client.authorize(authorize(a, code("2001")))).status is PENDING
        event = await watch.next()
        assert (event.reference, event.operation, event.result.status) == (a, AUTH, APPROVED)
        # The platform sends A's notification again; then B settles. The next event on the
        # stream is B's: the duplicate changed nothing.
        assert (await simulator.redeliver(a))["status"] == 204
        assert (await client.authorize(authorize(b, code("2001")))).status is PENDING
        assert (await watch.next()).reference == b
    finally:
        await watch.close()
    assert (await client.inquire(a, AUTH, merchant_id=MERCHANT)).status is APPROVED


async def test_a_stale_answer_is_a_pending_answer_never_an_approval(client: ChannelClient) -> None:
    r = ref("stale")
    assert (await client.authorize(authorize(r, code("3004")))).status is PENDING
    assert (await client.inquire(r, AUTH, merchant_id=MERCHANT)).status is DECLINED


async def test_with_the_wrong_api_v3_key_notifications_are_refused_but_queries_still_tell(
    simulator: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stranger = KeySet.create(tmp_path_factory.mktemp("stranger-v3"))
    flags = worker_flags(simulator, apiv3=stranger.path("apiv3.key"))
    with adapter_process("wechat", *flags) as process:
        async with ChannelClient(process.target) as c:
            r = ref("v3")
            assert (await c.authorize(authorize(r, code("0000")))).status is APPROVED
            answer = await simulator.redeliver(r)
            assert answer["status"] == 400 and "decrypt" in answer["body"]
            assert (await c.inquire(r, AUTH, merchant_id=MERCHANT)).status is APPROVED
