"""The WeChat-Pay-style channel (API v3): codepay, reverse, refund and query, plus notifications.

Flows: Authorize (capture=true only) -> POST /v3/pay/transactions/codepay; Void -> POST
.../out-trade-no/{n}/reverse (closes an unpaid order, refunds a paid one); Refund -> POST
/v3/refund/domestic/refunds with out_refund_no = the refund's reference; Inquire -> GET
.../out-trade-no/{n} or GET /v3/refund/domestic/refunds/{no}. USERPAYING is PENDING, settled
by a notification (published on the event stream) or by polling the query.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.sdk.adapter import EventSink
from adapters.sdk.errors import InvalidResponseError, UpstreamUnavailableError
from adapters.sdk.types import (
    AuthorizeRequest,
    DeclineCode,
    OperationResult,
    OperationStatus,
    OperationType,
    PaymentMethodType,
    RefundRequest,
)
from adapters.walletkit.memo import OpenOperation, upstream_call
from adapters.walletkit.wallet import Tuning, WalletAdapter
from adapters.wechat import mapping
from adapters.wechat.client import Answer, WechatPayClient
from adapters.wechat.notify import NOTIFY_PATH, NotificationListener
from adapters.wechat.signing import APIV3_KEY_BYTES, NonceMemory, PlatformVerifier

CODEPAY = "/v3/pay/transactions/codepay"
BY_OUT_TRADE_NO = "/v3/pay/transactions/out-trade-no/"
REFUNDS = "/v3/refund/domestic/refunds"


@dataclass(frozen=True, slots=True)
class WechatSettings:
    """Everything the channel needs, parsed and checked once at start-up."""

    api_base: str
    mchid: str
    appid: str
    merchant_key: rsa.RSAPrivateKey = field(repr=False)
    merchant_serial: str
    platform_key: rsa.RSAPublicKey = field(repr=False)
    platform_serial: str
    apiv3_key: bytes = field(repr=False)
    notify_listen: tuple[str, int] | None = None
    notify_url: str = ""
    tuning: Tuning = field(default_factory=Tuning)

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.api_base)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
            raise ValueError(
                f"api_base: expected an origin like https://host, got {self.api_base!r}"
            )
        if not self.mchid or not self.appid:
            raise ValueError("mchid and appid: must not be empty")
        if len(self.apiv3_key) != APIV3_KEY_BYTES:
            raise ValueError(f"apiv3_key: must be {APIV3_KEY_BYTES} bytes")

    @property
    def effective_notify_url(self) -> str:
        """Where the platform should post notifications: as given, or the listener's own."""
        if self.notify_url or self.notify_listen is None:
            return self.notify_url
        host, port = self.notify_listen
        return f"http://{host}:{port}{NOTIFY_PATH}"


class WechatPayAdapter(WalletAdapter):
    """A ChannelAdapter for a WeChat-Pay-style wallet (payment by the buyer's payment code)."""

    NAME = "wechat"
    METHOD = PaymentMethodType.WECHAT_PAY
    LABEL = "WeChat Pay"

    def __init__(self, settings: WechatSettings, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(settings.tuning)
        self._settings = settings
        self._clock = clock
        self._verifier = PlatformVerifier(
            settings.platform_key, settings.platform_serial, NonceMemory()
        )
        self._client: WechatPayClient | None = None
        self.listener: NotificationListener | None = None

    @property
    def connections_opened(self) -> int:
        return self._client.http.connections_opened if self._client is not None else 0

    async def _open(self, events: EventSink) -> None:
        s = self._settings
        if s.notify_listen is not None:
            host, port = s.notify_listen
            self.listener = NotificationListener(
                host=host,
                port=port,
                verifier=self._verifier,
                apiv3_key=s.apiv3_key,
                mchid=s.mchid,
                memo=self._memo,
                events=events,
                clock=self._clock,
            )
            await self.listener.start()
        self._client = WechatPayClient(
            http=s.tuning.http_client(s.api_base),
            mchid=s.mchid,
            merchant_key=s.merchant_key,
            merchant_serial=s.merchant_serial,
            verifier=self._verifier,
            clock=self._clock,
        )

    async def _close(self) -> None:
        if self.listener is not None:
            await self.listener.close()
        if self._client is not None:
            await self._client.aclose()

    # The flows below return what the platform's verified answer means.

    async def _resolve(self, op: OpenOperation) -> OperationResult:
        if op.operation is OperationType.AUTHORIZE:
            return await self._query(op.reference, OperationType.AUTHORIZE)
        if op.operation is OperationType.VOID:
            return await self._query(op.original_reference, OperationType.VOID)
        if op.operation is OperationType.REFUND:
            answer = await self._call("GET", f"{REFUNDS}/{op.reference}")
            if answer.status == 404:
                return OperationResult(
                    status=OperationStatus.NOT_FOUND, raw_code="RESOURCE_NOT_EXISTS"
                )
            if not answer.ok:
                return OperationResult.pending("the refund could not be queried")
            _echo(answer, "out_refund_no", op.reference)
            return mapping.refund_result(answer.body)
        # This channel never captures separately, so no capture ever happened.
        return OperationResult(status=OperationStatus.NOT_FOUND, message="no captures here")

    async def _pay(self, request: AuthorizeRequest, auth_code: str) -> OperationResult:
        s = self._settings
        number = mapping.out_trade_no(request.reference)
        payload: dict[str, Any] = {
            "appid": s.appid,
            "mchid": s.mchid,
            "description": (request.description or f"payswitch {request.merchant_id}")[:127],
            "out_trade_no": number,
            "attach": request.reference,
            "amount": {"total": mapping.to_fen(request.amount), "currency": mapping.CURRENCY},
            "scene_info": {"device_id": "payswitch"},
            "payer": {"auth_code": auth_code},
        }
        if s.effective_notify_url:
            payload["notify_url"] = s.effective_notify_url
        answer = await self._call("POST", CODEPAY, payload)
        if answer.ok:
            _echo(answer, "out_trade_no", number)
            result = mapping.transaction_result(answer.body, OperationType.AUTHORIZE)
            if (
                result.status is OperationStatus.APPROVED
                and result.approved_amount != request.amount
            ):
                raise InvalidResponseError("codepay: approved amount differs from the request")
            return result
        declined = mapping.pay_error_result(answer.body) if answer.status < 500 else None
        if declined is not None:
            return declined
        # No final answer (SYSTEM_ERROR, BANKERROR, ORDERPAID on a repeat): the query decides.
        queried = await self._query(request.reference, OperationType.AUTHORIZE)
        if queried.status is not OperationStatus.NOT_FOUND:
            return queried
        if 400 <= answer.status < 500:
            # Refused, and no order exists: the payment certainly did not happen.
            code = mapping.error_code(answer.body)
            return OperationResult.declined(DeclineCode.DO_NOT_HONOR, raw_code=code)
        return OperationResult.pending("the platform has no order yet", raw_code=queried.raw_code)

    async def _query(self, reference: str, operation: OperationType) -> OperationResult:
        number = mapping.out_trade_no(reference)
        query = urllib.parse.urlencode({"mchid": self._settings.mchid})
        answer = await self._call("GET", f"{BY_OUT_TRADE_NO}{number}?{query}")
        if answer.status == 404:
            return OperationResult(
                status=OperationStatus.NOT_FOUND, raw_code=mapping.error_code(answer.body)
            )
        if not answer.ok:
            return OperationResult.pending(
                "the order could not be queried", raw_code=mapping.error_code(answer.body)
            )
        _echo(answer, "out_trade_no", number)
        return mapping.transaction_result(answer.body, operation)

    async def _void(self, original_reference: str) -> OperationResult:
        number = mapping.out_trade_no(original_reference)
        payload = {"appid": self._settings.appid, "mchid": self._settings.mchid}
        answer = await self._call("POST", f"{BY_OUT_TRADE_NO}{number}/reverse", payload)
        if answer.ok:
            _echo(answer, "out_trade_no", number)
            return OperationResult.approved(raw_code="REVERSED")
        return mapping.reverse_error_result(answer.body)

    async def _refund(self, request: RefundRequest) -> OperationResult:
        payload: dict[str, Any] = {
            "out_trade_no": mapping.out_trade_no(request.original_reference),
            "out_refund_no": request.reference,
            "amount": {
                "refund": mapping.to_fen(request.amount),
                "total": mapping.to_fen(request.captured_amount),
                "currency": mapping.CURRENCY,
            },
        }
        if request.reason:
            payload["reason"] = request.reason[:80]
        if self._settings.effective_notify_url:
            payload["notify_url"] = self._settings.effective_notify_url
        answer = await self._call("POST", REFUNDS, payload)
        if answer.ok:
            _echo(answer, "out_refund_no", request.reference)
            return mapping.refund_result(answer.body)
        return mapping.refund_error_result(answer.body)

    async def _call(
        self, method: str, target: str, payload: dict[str, Any] | None = None
    ) -> Answer:
        if self._client is None:
            raise UpstreamUnavailableError("the WeChat Pay channel is not started")
        # Counted, so that only an operation's first call that cannot be sent is "not sent".
        upstream_call()
        return await self._client.call(method, target, payload)


def _echo(answer: Answer, name: str, expected: str) -> None:
    """Refuse a genuine answer about some other order (a replay, a misrouted answer)."""
    got = answer.body.get(name)
    if got != expected:
        raise InvalidResponseError(f"answer is about {name} {got!r}, not {expected!r} (replayed?)")
