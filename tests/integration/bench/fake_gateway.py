"""A small hand-written GatewayService for the harness's own tests: real gRPC, in-memory state.

Run as `python fake_gateway.py --listen 127.0.0.1:0 [--api-key K] [--cert C --key K]
[--authorize-ms MS]`; it prints `listening on HOST:PORT`. Outcomes follow the sandbox test cards:
4000000000000002 declines, any other valid card approves. Every answer carries
`x-switch-overhead-us`, as the switch does. With --authorize-ms, a unary Authorize of a new key
takes that long, and another with the same key meanwhile is refused ABORTED (key in progress),
as the switch refuses it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import signal
from collections.abc import AsyncIterator
from typing import Any

import grpc
import uvloop
from google.rpc import status_pb2

from payswitch.common.v1 import payment_status_pb2 as ps
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from payswitch.gateway.v1 import gateway_service_pb2_grpc as gw_grpc
from payswitch.gateway.v1 import payment_pb2

DECLINE_CARD = "4000000000000002"
OVERHEAD_US = "137"
CURRENCIES = {"USD", "EUR"}
AUTHORIZED = ps.PAYMENT_STATUS_AUTHORIZED
CAPTURED = ps.PAYMENT_STATUS_CAPTURED
REFUNDED = ps.PAYMENT_STATUS_REFUNDED


def luhn_ok(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def problems(req: gw.AuthorizeRequest) -> list[str]:
    card = req.payment_method.card
    today = datetime.date.today()
    bad = []
    if req.amount.amount_minor <= 0:
        bad.append("amount.amount_minor")
    if req.amount.currency not in CURRENCIES:
        bad.append("amount.currency")
    if not luhn_ok(card.number):
        bad.append("payment_method.card.number")
    if (card.expiry_year, card.expiry_month) < (today.year, today.month):
        bad.append("payment_method.card.expiry")
    if not (card.cvc.isdigit() and 3 <= len(card.cvc) <= 4):
        bad.append("payment_method.card.cvc")
    if req.capture_mode == payment_pb2.CAPTURE_MODE_UNSPECIFIED:
        bad.append("capture_mode")
    return bad


class Refusal(Exception):
    """A non-OK answer: its gRPC status code and message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FakeGateway(gw_grpc.GatewayServiceServicer):
    def __init__(self, api_key: str | None, authorize_s: float = 0.0) -> None:
        self.api_key = api_key
        self.authorize_s = authorize_s
        self.running: set[str] = set()  # keys of the authorizations still being worked on
        self.payments: dict[str, payment_pb2.Payment] = {}
        self.keys: dict[str, tuple[str, bytes]] = {}

    def _check_caller(self, context: Any) -> None:
        if self.api_key is not None:
            given = dict(context.invocation_metadata()).get("authorization")
            if given != f"Bearer {self.api_key}":
                raise Refusal(grpc.StatusCode.UNAUTHENTICATED, "unknown API key")

    def _replay(self, request: Any, method: str) -> bytes | None:
        """The stored answer when this key was seen with the same request."""
        fingerprint = hashlib.sha256(method.encode() + request.SerializeToString()).hexdigest()
        stored = self.keys.get(request.idempotency_key)
        if stored is None:
            return None
        if stored[0] != fingerprint:
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION, "idempotency key reused")
        return stored[1]

    def _keep(self, request: Any, method: str, response: Any) -> Any:
        fingerprint = hashlib.sha256(method.encode() + request.SerializeToString()).hexdigest()
        self.keys[request.idempotency_key] = (fingerprint, response.SerializeToString())
        return response

    def authorize(self, request: gw.AuthorizeRequest) -> gw.AuthorizeResponse:
        replay = self._replay(request, "Authorize")
        if replay is not None:
            return gw.AuthorizeResponse.FromString(replay)
        bad = problems(request)
        if bad:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "bad fields: " + ", ".join(bad))
        payment = payment_pb2.Payment(
            id=f"pay_{len(self.payments):08d}",
            amount=request.amount,
            capture_mode=request.capture_mode,
            channel="fake",
        )
        if request.payment_method.card.number == DECLINE_CARD:
            payment.status = ps.PAYMENT_STATUS_DECLINED
        elif request.capture_mode == payment_pb2.CAPTURE_MODE_AUTOMATIC:
            payment.status = ps.PAYMENT_STATUS_CAPTURED
        else:
            payment.status = ps.PAYMENT_STATUS_AUTHORIZED
        self.payments[payment.id] = payment
        return self._keep(request, "Authorize", gw.AuthorizeResponse(payment=payment))

    def move(self, request: Any, method: str, answer: Any, want: int, to: int) -> Any:
        """Capture or Refund: the payment from status `want` to `to`."""
        replay = self._replay(request, method)
        if replay is not None:
            return answer.FromString(replay)
        payment = self.payments.get(request.payment_id)
        if payment is None:
            raise Refusal(grpc.StatusCode.NOT_FOUND, "no such payment")
        if payment.status != want:
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION, "illegal transition")
        payment.status = to
        return self._keep(request, method, answer(payment=payment))

    async def _unary(self, context: Any, work: Any) -> Any:
        context.set_trailing_metadata((("x-switch-overhead-us", OVERHEAD_US),))
        try:
            self._check_caller(context)
            return work()
        except Refusal as refusal:
            await context.abort(refusal.code, refusal.message)

    def _in_progress(self) -> gw.AuthorizeResponse:
        raise Refusal(grpc.StatusCode.ABORTED, "idempotency key in progress")

    async def Authorize(self, request: gw.AuthorizeRequest, context: Any) -> gw.AuthorizeResponse:
        key = request.idempotency_key
        if self.authorize_s and key not in self.keys:
            if key in self.running:
                return await self._unary(context, self._in_progress)
            self.running.add(key)
            try:
                await asyncio.sleep(self.authorize_s)
            finally:
                self.running.discard(key)
        return await self._unary(context, lambda: self.authorize(request))

    async def Capture(self, request: gw.CaptureRequest, context: Any) -> gw.CaptureResponse:
        return await self._unary(
            context,
            lambda: self.move(request, "Capture", gw.CaptureResponse, AUTHORIZED, CAPTURED),
        )

    async def Refund(self, request: gw.RefundRequest, context: Any) -> gw.RefundResponse:
        return await self._unary(
            context,
            lambda: self.move(request, "Refund", gw.RefundResponse, CAPTURED, REFUNDED),
        )

    def _stream_answer(self, request: gw.StreamPaymentsRequest) -> gw.StreamPaymentsResponse:
        kind = request.WhichOneof("request")
        answer = gw.StreamPaymentsResponse(id=request.id)
        try:
            if kind == "authorize":
                answer.authorize.CopyFrom(self.authorize(request.authorize))
            elif kind == "capture":
                answer.capture.CopyFrom(
                    self.move(request.capture, "Capture", gw.CaptureResponse, AUTHORIZED, CAPTURED)
                )
            elif kind == "refund":
                answer.refund.CopyFrom(
                    self.move(request.refund, "Refund", gw.RefundResponse, CAPTURED, REFUNDED)
                )
            else:
                raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "no request")
        except Refusal as refusal:
            answer.error.CopyFrom(
                status_pb2.Status(code=refusal.code.value[0], message=refusal.message)
            )
        return answer

    async def StreamPayments(
        self, requests: AsyncIterator[gw.StreamPaymentsRequest], context: Any
    ) -> AsyncIterator[gw.StreamPaymentsResponse]:
        try:
            self._check_caller(context)
        except Refusal as refusal:
            await context.abort(refusal.code, refusal.message)
        async for request in requests:
            yield self._stream_answer(request)

    async def StreamPaymentBatches(
        self, batches: AsyncIterator[gw.StreamPaymentBatchesRequest], context: Any
    ) -> AsyncIterator[gw.StreamPaymentBatchesResponse]:
        try:
            self._check_caller(context)
        except Refusal as refusal:
            await context.abort(refusal.code, refusal.message)
        async for batch in batches:
            yield gw.StreamPaymentBatchesResponse(
                responses=[self._stream_answer(r) for r in batch.requests]
            )


async def serve(args: argparse.Namespace, tls: tuple[bytes, bytes] | None) -> None:
    server = grpc.aio.server()
    gateway = FakeGateway(args.api_key, args.authorize_ms / 1000)
    gw_grpc.add_GatewayServiceServicer_to_server(gateway, server)
    if tls is not None:
        port = server.add_secure_port(args.listen, grpc.ssl_server_credentials([tls]))
    else:
        port = server.add_insecure_port(args.listen)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on {args.listen.rpartition(':')[0]}:{port}", flush=True)
    await stop.wait()
    await server.stop(grace=1.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--cert", default=None)
    parser.add_argument("--key", default=None)
    parser.add_argument("--authorize-ms", type=float, default=0.0)
    args = parser.parse_args()
    tls = None
    if args.cert:
        with open(args.cert, "rb") as c, open(args.key, "rb") as k:
            tls = (k.read(), c.read())
    uvloop.run(serve(args, tls))


if __name__ == "__main__":
    main()
