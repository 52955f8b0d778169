"""Payment notifications: verified, decrypted, published once; spoiled ones refused (resent)."""

from __future__ import annotations

import json

import pytest

from adapters.sdk.types import OperationStatus, OperationType
from tests.integration.alipay.alipaykit import inquire, ref, refund
from tests.integration.wechat.conftest import AdapterFactory
from tests.integration.wechat.wechatkit import KeySet, SimulatorProcess, authorize, code


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
