"""The Alipay-style channel: barcode pay, cancel, refund and query over the RSA2-signed open API.

Flows: Authorize (capture=true only) -> alipay.trade.pay with out_trade_no = the reference;
Void -> alipay.trade.cancel; Refund -> alipay.trade.refund with out_request_no = the refund's
reference; Inquire -> alipay.trade.query (or alipay.trade.fastpay.refund.query for refunds).
An answer that says nothing final (20000, ACQ.SYSTEM_ERROR, a repeat) is settled by a query;
a buyer still confirming (10003, WAIT_BUYER_PAY) is PENDING and polled in the background.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.alipay import mapping
from adapters.alipay.client import AlipayClient
from adapters.sdk.adapter import EventSink
from adapters.sdk.errors import InvalidResponseError, UpstreamUnavailableError
from adapters.sdk.types import (
    AuthorizeRequest,
    OperationResult,
    OperationStatus,
    OperationType,
    PaymentMethodType,
    RefundRequest,
)
from adapters.walletkit.memo import MADE_NOT_SHOWN, OpenOperation, upstream_call
from adapters.walletkit.wallet import Tuning, WalletAdapter

PAY = "alipay.trade.pay"
QUERY = "alipay.trade.query"
CANCEL = "alipay.trade.cancel"
REFUND = "alipay.trade.refund"
REFUND_QUERY = "alipay.trade.fastpay.refund.query"


@dataclass(frozen=True, slots=True)
class AlipaySettings:
    """Everything the channel needs, parsed and checked once at start-up."""

    gateway_url: str
    app_id: str
    app_private_key: rsa.RSAPrivateKey = field(repr=False)
    platform_public_key: rsa.RSAPublicKey = field(repr=False)
    tuning: Tuning = field(default_factory=Tuning)

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.gateway_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"gateway_url: not an http(s) URL: {self.gateway_url!r}")
        if not self.app_id:
            raise ValueError("app_id: must not be empty")


class AlipayAdapter(WalletAdapter):
    """A ChannelAdapter for an Alipay-style wallet (payment by the buyer's payment code)."""

    NAME = "alipay"
    METHOD = PaymentMethodType.ALIPAY
    LABEL = "Alipay"

    def __init__(self, settings: AlipaySettings, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(settings.tuning)
        self._settings = settings
        self._clock = clock
        self._client: AlipayClient | None = None

    @property
    def connections_opened(self) -> int:
        return self._client.http.connections_opened if self._client is not None else 0

    async def _open(self, events: EventSink) -> None:
        s = self._settings
        parts = urllib.parse.urlsplit(s.gateway_url)
        self._client = AlipayClient(
            gateway_url=s.gateway_url,
            app_id=s.app_id,
            app_private_key=s.app_private_key,
            platform_public_key=s.platform_public_key,
            http=s.tuning.http_client(f"{parts.scheme}://{parts.netloc}"),
            clock=self._clock,
        )

    async def _close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def _resolve(self, op: OpenOperation) -> OperationResult:
        if op.operation is OperationType.AUTHORIZE:
            return await self._query(op.reference, OperationType.AUTHORIZE)
        if op.operation is OperationType.VOID:
            return await self._query(op.original_reference, OperationType.VOID)
        if op.operation is OperationType.REFUND:
            return await self._refund_query(op.original_reference, op.reference)
        # This channel never captures separately, so no capture ever happened.
        return OperationResult(status=OperationStatus.NOT_FOUND, message="no captures here")

    async def _pay(self, request: AuthorizeRequest, auth_code: str) -> OperationResult:
        ref = request.reference
        biz = {
            "out_trade_no": ref,
            "scene": "bar_code",
            "auth_code": auth_code,
            "product_code": "FACE_TO_FACE_PAYMENT",
            "subject": request.description or f"payswitch {request.merchant_id}",
            "total_amount": mapping.to_yuan(request.amount),
        }
        body = await self._call(PAY, biz, echo=("out_trade_no", ref))
        result = mapping.pay_result(body)
        if result is not None:
            if (
                result.status is OperationStatus.APPROVED
                and result.approved_amount != request.amount
            ):
                raise InvalidResponseError(f"{PAY}: approved amount differs from the request")
            return result
        # No final answer (20000, a system error, a repeat of a paid trade): the query decides.
        queried = await self._query(ref, OperationType.AUTHORIZE)
        if queried.status is not OperationStatus.NOT_FOUND:
            return queried
        # No trade yet. The declines that certainly refused the payment were answered above;
        # anything else (ACQ.SYSTEM_ERROR, a sub-code not known here) leaves the outcome open:
        # Alipay's guidance is to query again, and a trade may still appear. Pending, polled.
        return OperationResult.pending(
            "the platform has no trade yet",
            raw_code=str(body.get("sub_code") or queried.raw_code),
        )

    async def _query(self, out_trade_no: str, operation: OperationType) -> OperationResult:
        body = await self._call(
            QUERY, {"out_trade_no": out_trade_no}, echo=("out_trade_no", out_trade_no)
        )
        return mapping.trade_result(body, operation)

    async def _void(self, original_reference: str) -> OperationResult:
        biz = {"out_trade_no": original_reference}
        body = await self._call(CANCEL, biz, echo=("out_trade_no", original_reference))
        return mapping.cancel_result(body)

    async def _refund(self, request: RefundRequest) -> OperationResult:
        biz = {
            "out_trade_no": request.original_reference,
            "refund_amount": mapping.to_yuan(request.amount),
            "out_request_no": request.reference,
        }
        if request.reason:
            biz["refund_reason"] = request.reason
        body = await self._call(REFUND, biz, echo=("out_trade_no", request.original_reference))
        result = mapping.refund_result(body)
        if result.status is not OperationStatus.APPROVED:
            return result
        # The answer names the trade, not the refund request: a genuine answer to another refund
        # of the same trade, replayed, would read the same. The refund query names the request
        # (out_request_no) and its amount, so a success is confirmed there (Alipay's own advice
        # for fund_change=N, a repeat, as well). Until it is, money may have moved: the refund
        # is noted as answered made (durably) first, so that it is never NOT_FOUND, however
        # long the query lags and whether or not the worker restarts.
        await self._answered_made(request.reference)
        try:
            confirmed = await self._refund_query(request.original_reference, request.reference)
        except UpstreamUnavailableError as exc:
            # The refund itself was sent and answered: not "certainly not sent".
            return OperationResult.pending(
                f"the refund was answered as made; its query could not be sent ({exc.message})",
                raw_code=MADE_NOT_SHOWN,
            )
        if confirmed.status is OperationStatus.NOT_FOUND:
            return OperationResult.pending(
                "the refund was answered as made, but its query does not show it (yet)",
                raw_code=MADE_NOT_SHOWN,
            )
        return confirmed

    async def _refund_query(self, out_trade_no: str, out_request_no: str) -> OperationResult:
        body = await self._call(
            REFUND_QUERY,
            {"out_trade_no": out_trade_no, "out_request_no": out_request_no},
            echo=("out_trade_no", out_trade_no),
            required=False,
        )
        # An answer that shows a refund must show this one: not a replay about another refund.
        if body.get("refund_amount") and body.get("out_request_no") != out_request_no:
            got = body.get("out_request_no")
            raise InvalidResponseError(
                f"{REFUND_QUERY}: answer is about out_request_no {got!r}, not {out_request_no!r}"
                " (replayed?)"
            )
        return mapping.refund_query_result(body)

    async def _call(
        self,
        method: str,
        biz: Mapping[str, Any],
        *,
        echo: tuple[str, str],
        required: bool = True,
    ) -> dict[str, Any]:
        if self._client is None:
            raise UpstreamUnavailableError("the Alipay channel is not started")
        # Counted, so that only an operation's first call that cannot be sent is "not sent".
        upstream_call()
        body = await self._client.call(method, biz)
        # A genuine answer about some other trade (a replay, a misrouted answer) is refused.
        name, expected = echo
        if str(body.get("code")) in (mapping.SUCCESS, mapping.WAITING):
            got = body.get(name)
            if (got is not None or required) and got != expected:
                raise InvalidResponseError(
                    f"{method}: answer is about {name} {got!r}, not {expected!r} (replayed?)"
                )
        return body
