"""`payswitch adapter alipay` and the simulator as real processes, over ChannelService gRPC."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from adapters.sdk.conformance.client import ChannelClient, Refused
from adapters.sdk.conformance.process import WorkerProcess
from adapters.sdk.types import DeclineCode, OperationStatus, OperationType
from tests.contract.workers import adapter_command, adapter_process
from tests.integration.alipay.alipaykit import (
    APP_ID,
    MERCHANT,
    KeySet,
    SimulatorProcess,
    authorize,
    code,
    ref,
    refund,
    void,
)
from tests.support import REPO

APPROVED, DECLINED, PENDING, NOT_FOUND = (
    OperationStatus.APPROVED,
    OperationStatus.DECLINED,
    OperationStatus.PENDING,
    OperationStatus.NOT_FOUND,
)


def worker_flags(sim: SimulatorProcess, **keys: str) -> list[str]:
    return [
        "--gateway", sim.gateway,
        "--app-id", APP_ID,
        "--app-private-key", keys.get("app", sim.keys.path("app_private")),
        "--platform-public-key", keys.get("platform", sim.keys.path("platform_public")),
        "--poll-interval-s", "0.2",
        "--timeout-s", "2",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def worker(simulator: SimulatorProcess) -> Iterator[str]:
    with adapter_process("alipay", *worker_flags(simulator)) as process:
        yield process.target


@pytest.fixture
async def client(worker: str) -> AsyncIterator[ChannelClient]:
    async with ChannelClient(worker) as c:
        yield c


async def test_payment_partial_refund_and_void_over_grpc(client: ChannelClient) -> None:
    paid = ref("pay")
    approved = await client.authorize(authorize(paid, code("0000"), 10000))
    assert approved.status is APPROVED and approved.upstream_reference
    assert (await client.refund(refund(ref("rf"), paid, 4000, 10000))).status is APPROVED
    declined = await client.authorize(authorize(ref("no"), code("1051")))
    assert (declined.status, declined.decline_code) == (DECLINED, DeclineCode.INSUFFICIENT_FUNDS)
    other = ref("pay2")
    await client.authorize(authorize(other, code("0000")))
    assert (await client.void(void(ref("void"), other))).status is APPROVED
    found = await client.inquire(other, OperationType.AUTHORIZE, merchant_id=MERCHANT)
    assert found.status is APPROVED


async def test_a_slow_buyer_is_pending_then_announced_on_watch_events(
    client: ChannelClient,
) -> None:
    r = ref("slow")
    ready = asyncio.Event()
    events = client.watch(ready)
    first_event = asyncio.ensure_future(anext(events))
    await asyncio.wait_for(ready.wait(), 5)
    assert (await client.authorize(authorize(r, code("2001")))).status is PENDING
    event = await asyncio.wait_for(first_event, 10)
    await events.aclose()
    assert (event.reference, event.operation, event.result.status) == (
        r,
        OperationType.AUTHORIZE,
        APPROVED,
    )
    assert (
        await client.inquire(r, OperationType.AUTHORIZE, merchant_id=MERCHANT)
    ).status is APPROVED


async def test_a_forged_answer_is_a_pending_answer_never_an_approval(client: ChannelClient) -> None:
    r = ref("forged")
    assert (await client.authorize(authorize(r, code("3001")))).status is PENDING
    found = await client.inquire(r, OperationType.AUTHORIZE, merchant_id=MERCHANT)
    assert found.status is DECLINED


async def test_manual_capture_is_refused_as_not_supported(client: ChannelClient) -> None:
    with pytest.raises(Refused) as caught:
        await client.authorize(authorize(ref("man"), code("0000"), capture=False))
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.reason == "ERROR_REASON_OPERATION_NOT_SUPPORTED"


async def test_keys_can_come_from_the_environment(simulator: SimulatorProcess) -> None:
    env = {
        **os.environ,
        "ALIPAY_APP_KEY": (simulator.keys.dir / "app_private.pem").read_text(),
        "ALIPAY_PLATFORM_KEY": (simulator.keys.dir / "platform_public.pem").read_text(),
    }
    flags = worker_flags(simulator, app="env:ALIPAY_APP_KEY", platform="env:ALIPAY_PLATFORM_KEY")
    with WorkerProcess(adapter_command("alipay", *flags), env=env, cwd=str(REPO)) as w:
        async with ChannelClient(w.target) as c:
            assert (await c.authorize(authorize(ref("env"), code("0000")))).status is APPROVED


def test_a_key_that_cannot_be_loaded_stops_the_worker_without_showing_it(
    simulator: SimulatorProcess,
) -> None:
    # The platform's *private* key where its public key belongs, and a variable that is unset.
    private_pem = (simulator.keys.dir / "platform_private.pem").read_text()
    for keys in (
        {"platform": simulator.keys.path("platform_private")},
        {"app": "env:NO_SUCH_KEY_VAR"},
    ):
        done = subprocess.run(
            [sys.executable, "-m", "switch", "adapter", "alipay", "--listen", "127.0.0.1:0",
             *worker_flags(simulator, **keys)],
            cwd=REPO, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert done.returncode == 2
        assert "key" in done.stderr.lower()
        assert private_pem.splitlines()[1] not in done.stderr


async def test_with_the_wrong_platform_key_payments_stay_pending(
    simulator: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stranger = KeySet.create(tmp_path_factory.mktemp("stranger"))
    flags = worker_flags(simulator, platform=stranger.path("platform_public"))
    with adapter_process("alipay", *flags) as process:
        async with ChannelClient(process.target) as c:
            r = ref("wrongkey")
            assert (await c.authorize(authorize(r, code("0000")))).status is PENDING
            found = await c.inquire(r, OperationType.AUTHORIZE, merchant_id=MERCHANT)
            assert found.status is PENDING


async def test_a_killed_and_restarted_worker_still_knows_a_payment_it_sent_and_was_not_told(
    simulator: SimulatorProcess, tmp_path: pathlib.Path
) -> None:
    # 2007: ACQ.SYSTEM_ERROR and no trade. Inside the polling window the platform's "no such
    # trade" must stay PENDING (the request may still land): also after the worker died.
    state = tmp_path / "state"
    flags = [*worker_flags(simulator), "--poll-for-s", "600", "--state-dir", str(state)]
    r = ref("sent")
    first = adapter_process("alipay", *flags).start()
    try:
        async with ChannelClient(first.target) as c:
            assert (await c.authorize(authorize(r, code("2007")))).status is PENDING
    finally:
        first.signal(signal.SIGKILL)
        first.wait()
    with adapter_process("alipay", *flags) as again:
        async with ChannelClient(again.target) as c:
            found = await c.inquire(r, OperationType.AUTHORIZE, merchant_id=MERCHANT)
            assert found.status is PENDING, found
            # A reference this worker never sent is still NOT_FOUND at once.
            never = await c.inquire(ref("never"), OperationType.AUTHORIZE, merchant_id=MERCHANT)
            assert never.status is NOT_FOUND
    journal, lock = sorted(state.iterdir())
    assert (journal.name, lock.name) == (
        "alipay-open-operations.jsonl",
        "alipay-open-operations.jsonl.lock",  # one worker a state directory
    )
    assert [stat.S_IMODE(p.stat().st_mode) for p in (journal, lock)] == [0o600, 0o600]


async def test_a_refund_answered_as_made_is_still_pending_after_a_restart_past_the_window(
    keyset: KeySet, tmp_path: pathlib.Path
) -> None:
    # 3006, the refund's query lagging longer than this test: the platform answered the refund
    # as made and its query does not show it. Past the worker's polling window, and after the
    # worker was killed and restarted, an Inquire must still be PENDING, never NOT_FOUND (which
    # the switch records as FAILED while the money was returned).
    lagging = SimulatorProcess(keyset, extra=["--refund-lag-s", "600"])
    lagging.start()
    try:
        state = tmp_path / "state"
        flags = [*worker_flags(lagging), "--poll-for-s", "1", "--state-dir", str(state)]
        paid, rf = ref("pay"), ref("rf")
        first = adapter_process("alipay", *flags).start()
        try:
            async with ChannelClient(first.target) as c:
                paying = authorize(paid, code("3006"), 10000)
                assert (await c.authorize(paying)).status is APPROVED
                assert (await c.refund(refund(rf, paid, 3000, 10000))).status is PENDING
        finally:
            first.signal(signal.SIGKILL)
            first.wait()
        await asyncio.sleep(1.2)  # past the polling window
        with adapter_process("alipay", *flags) as again:
            async with ChannelClient(again.target) as c:
                found = await c.inquire(
                    rf, OperationType.REFUND, merchant_id=MERCHANT, original=paid
                )
                assert (found.status, found.raw_code) == (PENDING, "MADE_NOT_SHOWN"), found
                assert "reconcile with Alipay" in found.message
    finally:
        lagging.stop()
