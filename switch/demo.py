"""The traffic behind `payswitch up --traffic`: a tour of every flow, then load from the bench."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Mapping

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from payswitch.common.v1 import money_pb2, payment_method_pb2, payment_status_pb2
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from payswitch.gateway.v1 import gateway_service_pb2_grpc as gw_grpc
from payswitch.gateway.v1 import payment_pb2

# Test instruments of the channels `payswitch up` runs (each channel's README lists them):
# the sandbox's cards (USD), any other Luhn-valid card on the ISO 8583 simulator (CNY), and
# wallet payment codes whose last four digits 0000 mean "paid".
APPROVE = "4242424242424242"
DECLINE = "4000000000000002"
PENDING = "4000000000000259"
ALIPAY_PAID = "280000000000000000"
WECHAT_PAID = "130000000000000000"


def _status(p: payment_pb2.Payment) -> str:
    return payment_status_pb2.PaymentStatus.Name(p.status).removeprefix("PAYMENT_STATUS_")


def _auth(
    number: str, amount: int, *, manual: bool = False, key: str = "", currency: str = "USD"
) -> gw.AuthorizeRequest:
    return gw.AuthorizeRequest(
        idempotency_key=key or f"demo-{secrets.token_hex(6)}",
        amount=money_pb2.Money(amount_minor=amount, currency=currency),
        payment_method=payment_method_pb2.PaymentMethod(
            card=payment_method_pb2.Card(
                number=number, expiry_month=12, expiry_year=2030, cvc="123"
            )
        ),
        capture_mode=payment_pb2.CAPTURE_MODE_MANUAL
        if manual
        else payment_pb2.CAPTURE_MODE_AUTOMATIC,
        merchant_reference="demo-order",
    )


def _wallet(kind: str, code: str, amount: int) -> gw.AuthorizeRequest:
    method = (
        payment_method_pb2.PaymentMethod(alipay=payment_method_pb2.AlipayWallet(auth_code=code))
        if kind == "alipay"
        else payment_method_pb2.PaymentMethod(
            wechat_pay=payment_method_pb2.WechatPayWallet(auth_code=code)
        )
    )
    return gw.AuthorizeRequest(
        idempotency_key=f"demo-{secrets.token_hex(6)}",
        amount=money_pb2.Money(amount_minor=amount, currency="CNY"),
        payment_method=method,
        capture_mode=payment_pb2.CAPTURE_MODE_AUTOMATIC,
        merchant_reference="demo-order",
    )


def _explain(exc: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(exc)
    reason, fields = "", []
    for d in status.details if status else ():
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            reason = info.reason
        elif d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            d.Unpack(bad)
            fields = [v.field for v in bad.field_violations]
    extra = f" fields={','.join(fields)}" if fields else ""
    return f"{exc.code().name} {reason}{extra}"


async def tour(target: str, api_key: str) -> None:
    """One of each flow, printed as it happens."""
    md = (("authorization", f"Bearer {api_key}"),)
    async with grpc.aio.insecure_channel(target) as chan:
        stub = gw_grpc.GatewayServiceStub(chan)

        async def step(label: str, call: Callable[[], Awaitable[object]]) -> object:
            try:
                out = await call()
            except grpc.aio.AioRpcError as exc:
                print(f"  {label:<44} -> {_explain(exc)}")
                return None
            p = getattr(out, "payment", None)
            if p is not None:
                money = (
                    f"captured {p.captured_amount.amount_minor} "
                    f"refunded {p.refunded_amount.amount_minor}"
                )
                print(f"  {label:<44} -> {_status(p):<18} {p.id} via {p.channel} ({money})")
            return out

        print("A tour of the Gateway (one call per line):")
        await step(
            "authorize 12.50 USD, automatic capture",
            lambda: stub.Authorize(_auth(APPROVE, 1250), metadata=md),
        )
        await step(
            "authorize with a declining test card",
            lambda: stub.Authorize(_auth(DECLINE, 990), metadata=md),
        )
        await step(
            "authorize 88.00 CNY by card (ISO 8583)",
            lambda: stub.Authorize(_auth(APPROVE, 8800, currency="CNY"), metadata=md),
        )
        await step(
            "pay 66.60 CNY with an Alipay-style code",
            lambda: stub.Authorize(_wallet("alipay", ALIPAY_PAID, 6660), metadata=md),
        )
        await step(
            "pay 12.34 CNY with a WeChat-Pay-style code",
            lambda: stub.Authorize(_wallet("wechat", WECHAT_PAID, 1234), metadata=md),
        )
        auth = await step(
            "authorize 80.00 USD, manual capture",
            lambda: stub.Authorize(_auth(APPROVE, 8000, manual=True), metadata=md),
        )
        if isinstance(auth, gw.AuthorizeResponse):
            pid = auth.payment.id
            cap = gw.CaptureRequest(
                idempotency_key=f"demo-{secrets.token_hex(6)}",
                payment_id=pid,
                amount=money_pb2.Money(amount_minor=6000, currency="USD"),
            )
            await step("  capture 60.00 of it", lambda: stub.Capture(cap, metadata=md))
            await step(
                "  the same capture again (replayed)", lambda: stub.Capture(cap, metadata=md)
            )
            ref = gw.RefundRequest(
                idempotency_key=f"demo-{secrets.token_hex(6)}",
                payment_id=pid,
                amount=money_pb2.Money(amount_minor=2500, currency="USD"),
                reason="demo",
            )
            await step("  refund 25.00", lambda: stub.Refund(ref, metadata=md))
            await step(
                "  capture again (illegal)",
                lambda: stub.Capture(
                    gw.CaptureRequest(
                        idempotency_key=f"demo-{secrets.token_hex(6)}", payment_id=pid
                    ),
                    metadata=md,
                ),
            )
        key = f"demo-{secrets.token_hex(6)}"
        await step(
            "authorize with key K",
            lambda: stub.Authorize(_auth(APPROVE, 500, key=key), metadata=md),
        )
        await step(
            "same key K, different amount",
            lambda: stub.Authorize(_auth(APPROVE, 501, key=key), metadata=md),
        )
        bad = _auth("4242424242424241", 0)
        await step("a malformed request", lambda: stub.Authorize(bad, metadata=md))
        pending = await step(
            "a card whose outcome comes later",
            lambda: stub.Authorize(_auth(PENDING, 700), metadata=md),
        )
        if isinstance(pending, gw.AuthorizeResponse):
            async for update in stub.WatchPayment(
                gw.WatchPaymentRequest(payment_id=pending.payment.id), metadata=md, timeout=15
            ):
                print(f"  {'  watching it':<44} -> {_status(update.payment)}")


def run_demo(
    *, target: str, api_key: str, seconds: float, watch: Mapping[str, int] | None = None
) -> int:
    """The tour, then load from the bench, which reports the CPU per payment of the processes in
    `watch` (label: pid) beside the echo server's CPU per call."""
    asyncio.run(tour(target, api_key))
    try:
        from bench.cli import main as bench_main
    except ImportError:
        return 0
    print(f"\nLoad for {seconds:.0f} s from the bench harness (payswitch bench run):")
    args = ["run", "--target", target, "--api-key", api_key, "--duration", str(seconds)]
    for label, pid in (watch or {}).items():
        args += ["--watch-pid", f"{label}={pid}"]
    return int(bench_main(args))
