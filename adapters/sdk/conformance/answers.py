"""Conformance checks of single answers: health, Describe, approval, decline, bad input, and
the Exchange socket."""

from __future__ import annotations

import asyncio

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2

from adapters.sdk import convert, framing
from adapters.sdk.conformance.client import (
    ChannelClient,
    ConformanceError,
    Refused,
    expect,
    new_reference,
)
from adapters.sdk.conformance.profile import ConformanceProfile
from adapters.sdk.types import (
    Card,
    OperationResult,
    OperationStatus,
    OperationType,
    PaymentMethodType,
)
from payswitch.channel.v1 import channel_service_pb2 as ch

CHANNEL_SERVICE = "payswitch.channel.v1.ChannelService"
INVALID_REQUEST = "ERROR_REASON_INVALID_REQUEST"


def client_for(target: str, profile: ConformanceProfile) -> ChannelClient:
    return ChannelClient(target, timeout_s=profile.call_timeout_s)


async def expect_status(
    client: ChannelClient,
    reference: str,
    operation: OperationType,
    want: OperationStatus,
    profile: ConformanceProfile,
    why: str,
    *,
    original: str = "",
) -> None:
    """Inquire `reference` and fail unless its status is `want`; a follow-up (CAPTURE, VOID,
    REFUND) is asked about as the switch asks, with `original`, its payment's reference."""
    found = await client.inquire(
        reference, operation, merchant_id=profile.merchant_id, original=original
    )
    expect(found.status is want, f"{why}: Inquire said {found.status.name}, want {want.name}")


async def check_health_served(target: str, profile: ConformanceProfile) -> None:
    """grpc.health.v1 answers SERVING for the server and for the Channel service."""
    async with client_for(target, profile) as client:
        for service in ("", CHANNEL_SERVICE):
            status = await client.health(service)
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
            expect(
                status == health_pb2.HealthCheckResponse.SERVING,
                f"health of {service or 'the server'!r} is {name}, want SERVING",
            )


async def check_capabilities_described(target: str, profile: ConformanceProfile) -> None:
    """Describe names the channel and what it supports, and covers the profile's instruments."""
    async with client_for(target, profile) as client:
        caps = await client.describe()
    expect(
        convert.CHANNEL_NAME.fullmatch(caps.name) is not None,
        f"name {caps.name!r} must match [a-z0-9_]{{1,32}}",
    )
    if profile.channel_name is not None:
        expect(
            caps.name == profile.channel_name, f"name {caps.name!r}, want {profile.channel_name!r}"
        )
    expect(bool(caps.payment_methods), "no payment methods described")
    bad = sorted(c for c in caps.currencies if convert.CURRENCY.fullmatch(c) is None)
    expect(bool(caps.currencies) and not bad, f"currencies must be ISO 4217 codes, got {bad}")
    expect(caps.min_amount_minor >= 1, "min_amount_minor must be at least 1")
    expect(
        caps.max_amount_minor == 0 or caps.max_amount_minor >= caps.min_amount_minor,
        "max_amount_minor must be 0 (no limit) or at least min_amount_minor",
    )
    expect(
        profile.currency in caps.currencies, f"profile currency {profile.currency} not described"
    )
    within = caps.max_amount_minor == 0 or profile.amount_minor <= caps.max_amount_minor
    expect(
        caps.min_amount_minor <= profile.amount_minor and within,
        f"profile amount {profile.amount_minor} is outside the described limits",
    )
    for label in ("approving", "declining", "unknown_outcome", "hanging"):
        method = getattr(profile, label)
        if method is not None:
            kind = PaymentMethodType.CARD if isinstance(method, Card) else method.type
            expect(
                kind in caps.payment_methods,
                f"profile instrument {label} is of a payment method the channel does not describe",
            )


async def check_approval_answered(target: str, profile: ConformanceProfile) -> None:
    """The approving instrument is APPROVED, and Inquire then says APPROVED."""
    reference = new_reference("ok")
    async with client_for(target, profile) as client:
        result = await client.authorize(profile.authorize(reference))
        expect(result.status is OperationStatus.APPROVED, f"answered {result.status.name}")
        expect(result.decline_code is None, "an approval must not carry a decline code")
        await expect_status(
            client, reference, OperationType.AUTHORIZE, OperationStatus.APPROVED, profile, "after"
        )


async def check_decline_is_an_answer(target: str, profile: ConformanceProfile) -> None:
    """A decline is an OK answer with status DECLINED and a decline code, never an error."""
    reference = new_reference("no")
    async with client_for(target, profile) as client:
        try:
            result = await client.authorize(profile.authorize(reference, profile.declining))
        except Refused as refused:
            raise ConformanceError(f"a decline must be an OK answer, got {refused}") from refused
        expect(result.status is OperationStatus.DECLINED, f"answered {result.status.name}")
        expect(result.decline_code is not None, "a decline must carry a decline code")
        if profile.decline_code is not None:
            expect(
                result.decline_code is profile.decline_code,
                f"decline code {result.decline_code}, want {profile.decline_code.name}",
            )
        await expect_status(
            client, reference, OperationType.AUTHORIZE, OperationStatus.DECLINED, profile, "after"
        )


async def check_unknown_reference_not_found(target: str, profile: ConformanceProfile) -> None:
    """Inquire of a reference nobody used answers NOT_FOUND (an OK answer): an authorization,
    and a capture, void or refund of a payment that was approved or never seen."""
    not_found = OperationStatus.NOT_FOUND
    async with client_for(target, profile) as client:
        await expect_status(
            client, new_reference("none"), OperationType.AUTHORIZE, not_found, profile, "unknown"
        )
        paid = new_reference("paid")
        result = await client.authorize(profile.authorize(paid))
        expect(result.status is OperationStatus.APPROVED, f"approving: {result.status.name}")
        for original, whose in ((paid, "an approved payment"), (new_reference("gone"), "none")):
            for operation in (OperationType.CAPTURE, OperationType.VOID, OperationType.REFUND):
                why = f"unknown {operation.name} of {whose}"
                reference = new_reference("none")
                await expect_status(
                    client, reference, operation, not_found, profile, why, original=original
                )


# (rpc, field, bad value or None to leave it unset, label): the field path names both what to
# break in a well-formed request and what the refusal's BadRequest must name.
BAD_INPUT: list[tuple[str, str, object, str]] = [
    ("Authorize", "reference", "", "empty reference"),
    ("Authorize", "reference", "a b c", "reference with spaces"),
    ("Authorize", "reference", "r" * 65, "reference of 65 characters"),
    ("Authorize", "merchant_id", "", "empty merchant id"),
    ("Authorize", "amount", None, "no amount"),
    ("Authorize", "amount.amount_minor", 0, "zero amount"),
    ("Authorize", "amount.amount_minor", -100, "negative amount"),
    ("Authorize", "amount.currency", "usd", "lower-case currency"),
    ("Authorize", "amount.currency", "US", "two-letter currency"),
    ("Authorize", "payment_method", None, "no payment method"),
    ("Authorize", "payment_method.card.number", "4242424242424241", "card number failing Luhn"),
    ("Authorize", "payment_method.card.number", "42424242", "card number of 8 digits"),
    ("Authorize", "payment_method.card.expiry_month", 13, "expiry month 13"),
    ("Authorize", "payment_method.card.cvc", "1", "CVC of one digit"),
    ("Authorize", "payment_method.alipay.auth_code", "123", "Alipay payment code of 3 digits"),
    ("Authorize", "payment_method.wechat_pay.auth_code", "12ab", "WeChat Pay code with letters"),
    ("Capture", "original_reference", "", "capture without original"),
    ("Capture", "amount.amount_minor", 0, "capture of zero"),
    ("Void", "original_reference", "no such!", "void of a malformed original"),
    ("Refund", "amount", None, "refund without amount"),
    ("Refund", "amount.currency", "eur", "refund in a lower-case currency"),
    ("Inquire", "operation", 0, "inquire of no operation"),
    ("Inquire", "reference", "", "inquire of an empty reference"),
    ("Inquire", "original_reference", "", "inquire of a refund without its original"),
]


def _well_formed(rpc: str, profile: ConformanceProfile, reference: str) -> Message:
    money = convert.money_to_proto(profile.money(profile.amount_minor))
    common = {"reference": reference, "merchant_id": profile.merchant_id}
    if rpc == "Authorize":
        return convert.authorize_request_to_proto(profile.authorize(reference))
    original = {"original_reference": new_reference("orig"), "amount": money}
    if rpc == "Inquire":
        refund = OperationType.REFUND.value
        return ch.InquireRequest(operation=refund, **original, **common)  # type: ignore[arg-type]
    if rpc == "Capture":
        return ch.CaptureRequest(authorized_amount=money, **original, **common)  # type: ignore[arg-type]
    if rpc == "Refund":
        return ch.RefundRequest(captured_amount=money, **original, **common)  # type: ignore[arg-type]
    return ch.VoidRequest(**original, **common)  # type: ignore[arg-type]


def _break(request: Message, path: str, value: object) -> Message:
    *parents, last = path.split(".")
    target = request
    for part in parents:
        target = getattr(target, part)
    if value is None:
        target.ClearField(last)
    else:
        setattr(target, last, value)
    return request


def _applies(profile: ConformanceProfile, path: str) -> bool:
    """Instrument fields are broken only on the profile's own kind of instrument."""
    if not path.startswith("payment_method."):
        return True
    method = profile.approving
    kind = "card" if isinstance(method, Card) else method.type.name.lower()
    return path.split(".")[1] == kind


async def check_bad_input_refused(target: str, profile: ConformanceProfile) -> None:
    """Malformed requests get INVALID_ARGUMENT naming the field, and are not acted on."""
    async with client_for(target, profile) as client:
        for rpc, path, value, label in BAD_INPUT:
            if not _applies(profile, path):
                continue
            reference = new_reference("bad")
            request = _well_formed(rpc, profile, reference)
            original = getattr(request, "original_reference", "")
            try:
                await client.call(rpc, _break(request, path, value))
            except Refused as refused:
                expect(
                    refused.code == grpc.StatusCode.INVALID_ARGUMENT,
                    f"{label}: refused with {refused.code.name}, want INVALID_ARGUMENT",
                )
                expect(
                    (refused.domain, refused.reason) == ("payswitch", INVALID_REQUEST),
                    f"{label}: ErrorInfo {refused.domain}/{refused.reason}, "
                    f"want payswitch/{INVALID_REQUEST}",
                )
                expect(path in refused.fields, f"{label}: BadRequest names {refused.fields}")
            else:
                raise ConformanceError(f"{label}: {rpc} was answered instead of refused")
            operation = OperationType.AUTHORIZE if rpc == "Inquire" else OperationType[rpc.upper()]
            await expect_status(
                client, reference, operation, OperationStatus.NOT_FOUND, profile, label,
                original=original if operation is not OperationType.AUTHORIZE else "",
            )  # fmt: skip


async def check_exchange_socket_answers(target: str, profile: ConformanceProfile) -> None:
    """An Exchange socket the worker advertises in Describe answers each operation of a batch
    under its id, as the RPCs would (passes when it advertises none: the switch uses the RPC)."""
    async with client_for(target, profile) as client:
        described = await client.call("Describe", ch.DescribeRequest())
        if not described.exchange_address:
            return
        address = framing.reachable(described.exchange_address, target)
        approve, decline = new_reference("xs"), new_reference("xn")
        batch = ch.ExchangeRequest()
        for op_id, reference, method in ((7, approve, None), (8, decline, profile.declining)):
            request = convert.authorize_request_to_proto(profile.authorize(reference, method))
            batch.operations.add(
                id=op_id, timeout_ms=int(profile.call_timeout_s * 1000)
            ).authorize.CopyFrom(request)
        answers = await _exchange_once(address, batch, profile.call_timeout_s)
        by_id = {a.id: a for a in answers}
        expect(set(by_id) == {7, 8}, f"answers came for ids {sorted(by_id)}, want [7, 8]")
        approved = _socket_result(by_id[7], "approving")
        expect(approved.status is OperationStatus.APPROVED, f"approving: {approved.status.name}")
        declined = _socket_result(by_id[8], "declining")
        expect(declined.status is OperationStatus.DECLINED, f"declining: {declined.status.name}")
        await expect_status(
            client, approve, OperationType.AUTHORIZE, OperationStatus.APPROVED, profile, "after"
        )


def _socket_result(answer: ch.ExchangeAnswer, label: str) -> OperationResult:
    if answer.HasField("error"):
        raise ConformanceError(
            f"{label}: the Exchange socket refused it ({answer.error.message}), want an answer"
        )
    try:
        return convert.result_from_proto(answer.result)
    except ValueError as exc:
        raise ConformanceError(
            f"{label}: the Exchange socket answered no valid result: {exc}"
        ) from exc


async def _exchange_once(
    address: str, batch: ch.ExchangeRequest, timeout_s: float
) -> list[ch.ExchangeAnswer]:
    """Send one batch on a new connection and read answers until every operation has one."""
    try:
        async with asyncio.timeout(timeout_s * 2):
            if address.startswith("unix:"):
                reader, writer = await asyncio.open_unix_connection(address.removeprefix("unix:"))
            else:
                host, port = framing.split(address)
                reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(framing.PREFACE + framing.frame(batch.SerializeToString()))
                frames = framing.FrameReader()
                answers: list[ch.ExchangeAnswer] = []
                while len(answers) < len(batch.operations):
                    data = await reader.read(65536)
                    expect(bool(data), "the worker closed the Exchange socket before answering")
                    for message in frames.feed(data):
                        answers += ch.ExchangeResponse.FromString(message).answers
                return answers
            finally:
                writer.close()
    except (OSError, TimeoutError, framing.FrameError) as exc:
        raise ConformanceError(f"Exchange socket {address}: {type(exc).__name__}: {exc}") from exc
