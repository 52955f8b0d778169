"""Payment notifications: verified, decrypted, published once; spoiled ones refused (resent)."""

from __future__ import annotations

import json

import pytest

from adapters.sdk.types import InquireRequest, OperationStatus, OperationType
from adapters.wechat.notify import NOTIFY_PATH
from tests.integration.alipay.alipaykit import MERCHANT, cny, inquire, ref, refund
from tests.integration.wechat.conftest import AdapterFactory
from tests.integration.wechat.wechatkit import KeySet, SimulatorProcess, authorize, code
from tests.support import free_port

APPROVED = OperationStatus.APPROVED
AUTH, REFUND = OperationType.AUTHORIZE, OperationType.REFUND


async def test_a_notification_settles_a_pending_payment_and_is_published(
    make_adapter: AdapterFactory,
) -> None:
    adapter, events = await make_adapter(poll_interval_s=0)  # no polling: only the notification
    r = ref("notified")
    assert (await adapter.authorize(authorize(r, code("2001")))).status is OperationStatus.PENDING
    event = await events.settled(r)
    assert (event.operation, event.result.status) == (
        OperationType.AUTHORIZE,
        OperationStatus.APPROVED,
    )
    assert event.result.upstream_reference.startswith("4200")
    assert adapter.listener is not None and adapter.listener.counts["published"] == 1
    assert (
        await adapter.inquire(inquire(r, OperationType.AUTHORIZE))
    ).status is OperationStatus.APPROVED


async def test_a_duplicate_notification_changes_nothing(
    make_adapter: AdapterFactory, simulator: SimulatorProcess
) -> None:
    adapter, events = await make_adapter(poll_interval_s=0)
    r = ref("dup")
    await adapter.authorize(authorize(r, code("2001")))
    first = await events.settled(r)
    for _ in range(3):
        answer = await simulator.redeliver(r)
        assert answer["status"] == 204  # acknowledged, so the platform stops sending it
    assert events.about(r) == [first]
    assert adapter.listener is not None and adapter.listener.counts["duplicates"] == 3
    assert (await adapter.inquire(inquire(r, OperationType.AUTHORIZE))) == first.result


async def test_a_notification_of_what_the_answer_told_already_is_not_published_again(
    make_adapter: AdapterFactory, simulator: SimulatorProcess
) -> None:
    adapter, events = await make_adapter(poll_interval_s=0)
    r = ref("known")
    assert (await adapter.authorize(authorize(r, code("0000")))).status is OperationStatus.APPROVED
    assert (await simulator.redeliver(r))["status"] == 204
    assert not events.about(r)


@pytest.mark.parametrize(
    ("tamper", "status", "why"),
    [
        ("signature", 401, "does not verify"),
        ("wrongkey", 401, "does not verify"),
        ("stale", 401, "stale"),
        ("unsigned", 401, "unsigned"),
        ("ciphertext", 400, "cannot decrypt"),
    ],
)
async def test_spoiled_notifications_are_refused_so_they_are_sent_again(
    make_adapter: AdapterFactory, simulator: SimulatorProcess, tamper: str, status: int, why: str
) -> None:
    adapter, events = await make_adapter(poll_interval_s=0)
    r = ref("spoiled")
    await adapter.authorize(authorize(r, code("0000")))
    answer = await simulator.redeliver(r, tamper)
    assert answer["status"] == status
    body = json.loads(answer["body"])
    assert body["code"] == "FAIL" and why in body["message"]
    assert not events.about(r)
    assert adapter.listener is not None and adapter.listener.counts["refused"] == 1
    assert (await simulator.redeliver(r))["status"] == 204  # the genuine one still goes through


async def test_a_refund_in_progress_is_settled_by_its_notification(
    make_adapter: AdapterFactory, keyset: KeySet
) -> None:
    slow_refunds = SimulatorProcess(keyset, extra=["--refund-after-s", "0.4"])
    slow_refunds.start()
    try:
        adapter, events = await make_adapter(api_base=slow_refunds.api_base, poll_interval_s=0)
        paid, rf = ref("pay"), ref("rf")
        await adapter.authorize(authorize(paid, code("0000"), 5000))
        result = await adapter.refund(refund(rf, paid, 2000, 5000))
        assert (result.status, result.raw_code) == (OperationStatus.PENDING, "PROCESSING")
        event = await events.settled(rf)
        assert (event.operation, event.result.status) == (
            OperationType.REFUND,
            OperationStatus.APPROVED,
        )
        assert (await adapter.refund(refund(rf, paid, 2000, 5000))) == event.result
    finally:
        slow_refunds.stop()


async def test_a_success_notified_for_an_operation_not_on_record_is_left_to_inquire(
    make_adapter: AdapterFactory, simulator: SimulatorProcess
) -> None:
    # `worker` has no record of what `sender` asked, as after a restart or once the polling
    # window (--poll-for-s) has passed: the platform's notifications come to it regardless.
    port = free_port()
    worker, events = await make_adapter(notify_listen=("127.0.0.1", port), poll_interval_s=0)
    url = f"http://127.0.0.1:{port}{NOTIFY_PATH}"
    sender, _ = await make_adapter(notify=False, notify_url=url, poll_interval_s=0)
    # 2008: the platform takes 1 fen less than asked (order and refunds) and notifies that.
    short, rf, fine = ref("short"), ref("rf"), ref("fine")
    await sender.authorize(authorize(short, code("2008"), 10000))
    await sender.refund(refund(rf, short, 3000, 10000))
    assert (await sender.authorize(authorize(fine, code("0000"), 5000))).status is APPROVED
    for reference in (short, rf, fine):
        assert (await simulator.redeliver(reference))["status"] == 204  # acknowledged
    assert not events.items  # ... but a success held to no amount is not the switch's to record
    assert worker.listener is not None and worker.listener.counts["withheld"] >= 3
    # The switch's Inquire carries the amount, and the platform's query is held to it.
    paid = await worker.inquire(InquireRequest(short, MERCHANT, AUTH, "", cny(10000)))
    assert (paid.status, paid.raw_code) == (OperationStatus.PENDING, "AMOUNT_MISMATCH")
    refunded = await worker.inquire(InquireRequest(rf, MERCHANT, REFUND, short, cny(3000)))
    assert (refunded.status, refunded.raw_code) == (OperationStatus.PENDING, "AMOUNT_MISMATCH")
    ok = await worker.inquire(InquireRequest(fine, MERCHANT, AUTH, "", cny(5000)))
    assert ok.status is APPROVED and ok.approved_amount == cny(5000)
