"""The conformance suite catches channels that break the contract, and its command reports it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from adapters.sandbox.adapter import SandboxAdapter, SandboxConfig
from adapters.sandbox.conformance import PROFILE
from adapters.sdk.conformance import CHECKS, ConformanceError
from adapters.sdk.errors import InvalidRequestError, UpstreamUnavailableError
from adapters.sdk.types import (
    AuthorizeRequest,
    CaptureRequest,
    Card,
    ChannelEvent,
    InquireRequest,
    OperationResult,
    OperationStatus,
    OperationType,
    RefundRequest,
)
from adapters.sdk.worker import Worker
from tests.contract.workers import adapter_process
from tests.support import REPO

FAST = SandboxConfig(pending_resolve_s=0.05, hang_s=2.0)
QUICK = dataclasses.replace(PROFILE, resolve_timeout_s=1.0, call_timeout_s=3.0)
BY_NAME = {c.name: c for c in CHECKS}
PROFILE_SPEC = "adapters.sandbox.conformance:PROFILE"
NAMED = dataclasses.replace(PROFILE, channel_name="sandbox")
UNCOUNTED = dataclasses.replace(PROFILE, upstream_counter=None)


class ChargesTwice(SandboxAdapter):
    """Forgets each reference, so a repeat executes again."""

    async def authorize(self, request: AuthorizeRequest) -> OperationResult:
        self._ops.forget(request.reference)
        return await super().authorize(request)


class DeclinesWithErrors(SandboxAdapter):
    """Turns declines into UNAVAILABLE errors."""

    async def authorize(self, request: AuthorizeRequest) -> OperationResult:
        result = await super().authorize(request)
        if result.status is OperationStatus.DECLINED:
            raise UpstreamUnavailableError("declined")
        return result


class InventsOutcomes(SandboxAdapter):
    """Says APPROVED for references it never saw."""

    async def inquire(self, request: InquireRequest) -> OperationResult:
        result = await super().inquire(request)
        if result.status is OperationStatus.NOT_FOUND:
            return OperationResult(status=OperationStatus.APPROVED)
        return result


class Silent(SandboxAdapter):
    """Never publishes events."""

    async def start(self, events: object) -> None:
        class Drop:
            def publish(self, event: ChannelEvent) -> None:
                pass

        await super().start(Drop())


class PendsForever(SandboxAdapter):
    """Answers the pending card PENDING and never settles it."""

    async def inquire(self, request: InquireRequest) -> OperationResult:
        result = await super().inquire(request)
        if result.status is OperationStatus.APPROVED and request.reference.startswith("cf-unk"):
            return OperationResult(status=OperationStatus.PENDING)
        return result


class NeedsTheOriginal(SandboxAdapter):
    """Finds a follow-up under its payment, as a wallet's refund query does: an Inquire of a
    capture, void or refund without original_reference (the switch always sends it) is refused."""

    async def inquire(self, request: InquireRequest) -> OperationResult:
        if request.operation is not OperationType.AUTHORIZE and not request.original_reference:
            raise InvalidRequestError([("original_reference", "is required for a follow-up")])
        return await super().inquire(request)


class SendsAgain(SandboxAdapter):
    """Answers a repeat of `operation` with its first result, as it should, but sends it
    upstream again first, as an adapter that retries without looking at its records does: every
    answer agrees, and only the upstream's count shows the second charge."""

    def __init__(self, config: SandboxConfig, operation: OperationType) -> None:
        super().__init__(config)
        self.operation = operation

    async def authorize(self, request: AuthorizeRequest) -> OperationResult:
        parent = super().authorize
        return await self._again(
            OperationType.AUTHORIZE, request.reference, lambda: parent(request)
        )

    async def capture(self, request: CaptureRequest) -> OperationResult:
        parent = super().capture
        return await self._again(OperationType.CAPTURE, request.reference, lambda: parent(request))

    async def refund(self, request: RefundRequest) -> OperationResult:
        parent = super().refund
        return await self._again(OperationType.REFUND, request.reference, lambda: parent(request))

    async def _again(
        self,
        operation: OperationType,
        reference: str,
        send: Callable[[], Awaitable[OperationResult]],
    ) -> OperationResult:
        first = self._ops.get(reference)
        if operation is not self.operation or first is None:
            return await send()
        self._ops.forget(reference)
        await send()
        self._ops.put(reference, first)
        return first.result


async def served(adapter: SandboxAdapter) -> AsyncIterator[str]:
    worker = Worker(adapter, listen="127.0.0.1:0")
    port = await worker.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await worker.stop()


@pytest.mark.parametrize(
    ("adapter_class", "check", "complaint"),
    [
        (ChargesTwice, "same_reference_not_charged_twice", "different answers"),
        (DeclinesWithErrors, "decline_is_an_answer", "must be an OK answer"),
        (DeclinesWithErrors, "exchange_socket_answers", "declining: the Exchange socket refused"),
        (InventsOutcomes, "unknown_reference_not_found", "want NOT_FOUND"),
        (Silent, "unknown_outcome_announced", "no WatchEvents event"),
        (PendsForever, "unknown_outcome_resolves", "still PENDING"),
    ],
)
async def test_a_broken_channel_fails_the_check(
    adapter_class: type[SandboxAdapter], check: str, complaint: str
) -> None:
    async for target in served(adapter_class(FAST)):
        with pytest.raises(ConformanceError, match=complaint):
            await BY_NAME[check](target, QUICK)


# The narrow channel refuses partial capture, void and partial refund, so that
# capabilities_honoured inquires each refused follow-up.
NARROW = dataclasses.replace(
    FAST, void=False, partial_capture=False, partial_refund=False, name="sandbox_narrow"
)


@pytest.mark.parametrize(
    ("check", "config"),
    [
        ("supported_operations_work", FAST),
        ("unknown_reference_not_found", FAST),
        ("bad_input_refused", FAST),
        ("capabilities_honoured", NARROW),
    ],
)
async def test_follow_ups_are_inquired_with_their_original_reference(
    check: str, config: SandboxConfig
) -> None:
    async for target in served(NeedsTheOriginal(config)):
        await BY_NAME[check](target, QUICK)


@pytest.mark.parametrize(
    ("operation", "label"),
    [
        (OperationType.AUTHORIZE, "an authorization"),
        (OperationType.CAPTURE, "a capture"),
        (OperationType.REFUND, "a refund"),
    ],
)
async def test_a_channel_that_sends_a_repeat_upstream_again_fails(
    operation: OperationType, label: str, tmp_path: Path
) -> None:
    journal = str(tmp_path / "journal.jsonl")
    counted = dataclasses.replace(QUICK, upstream_at=journal)
    async for target in served(SendsAgain(dataclasses.replace(FAST, journal=journal), operation)):
        if operation is OperationType.AUTHORIZE:
            # Its answers agree, so the check of answers alone lets it through.
            await BY_NAME["same_reference_not_charged_twice"](target, counted)
        complaint = f"{label} sent 4 times under one reference was carried out 4 times upstream"
        with pytest.raises(ConformanceError, match=complaint):
            await BY_NAME["replays_charged_once_upstream"](target, counted)


async def test_a_profile_that_does_not_match_the_channel_fails() -> None:
    wrong = dataclasses.replace(QUICK, channel_name="card", currency="CHF")
    async for target in served(SandboxAdapter(FAST)):
        with pytest.raises(ConformanceError, match="name 'sandbox'"):
            await BY_NAME["capabilities_described"](target, wrong)
        unexpected_code = dataclasses.replace(
            QUICK, declining=Card("4000000000000002", 12, 2035, "123")
        )
        with pytest.raises(ConformanceError, match="want INSUFFICIENT_FUNDS"):
            await BY_NAME["decline_is_an_answer"](target, unexpected_code)


def conformance(*argv: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "switch", "conformance", *argv]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=50)


def test_command_prints_a_line_per_check_and_exits_0(tmp_path: Path) -> None:
    journal = str(tmp_path / "journal.jsonl")
    with adapter_process("sandbox", "--pending-resolve-ms", "50", "--journal", journal) as worker:
        done = conformance(
            "--target", worker.target, "--profile", PROFILE_SPEC, "--upstream", journal
        )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[:2] for line in lines[: len(CHECKS)]] == [["PASS", c.name] for c in CHECKS]
    assert lines[-1] == f"{len(CHECKS)} passed, 0 failed"


def test_command_exits_1_on_a_failed_check() -> None:
    # A sandbox named otherwise than the profile expects fails capabilities_described.
    with adapter_process("sandbox", "--name", "other") as worker:
        done = conformance(
            "--target", worker.target, "--profile", "tests.contract.test_conformance_suite:NAMED",
            "--check", "capabilities_described", "--check", "health_served",
        )  # fmt: skip
    assert done.returncode == 1
    assert "FAIL  capabilities_described" in done.stdout
    assert "PASS  health_served" in done.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["--target", "127.0.0.1:1", "--profile", "no.such.module:PROFILE"],
        ["--target", "127.0.0.1:1", "--profile", "adapters.sandbox.conformance:NOPE"],
        ["--target", "127.0.0.1:1", "--profile", "adapters.sandbox.conformance"],
        ["--target", "127.0.0.1:1", "--profile", PROFILE_SPEC, "--check", "nope"],
        ["--profile", PROFILE_SPEC],
    ],
)
def test_command_usage_errors_exit_2(argv: list[str]) -> None:
    done = conformance(*argv)
    assert done.returncode == 2
    assert "payswitch conformance" in done.stderr


def test_command_refuses_upstream_for_a_profile_that_cannot_count() -> None:
    uncounted = "tests.contract.test_conformance_suite:UNCOUNTED"
    done = conformance("--target", "127.0.0.1:1", "--profile", uncounted, "--upstream", "j")
    assert done.returncode == 2
    assert f"--upstream: {uncounted} has no upstream_counter" in done.stderr
