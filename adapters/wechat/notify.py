"""The notification listener: verify the platform's signature, decrypt, map, publish once."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from adapters.sdk.adapter import EventSink
from adapters.sdk.types import ChannelEvent, OperationStatus, OperationType
from adapters.walletkit.httpserver import HttpRequest, HttpServer, Reply
from adapters.walletkit.memo import OperationMemo
from adapters.walletkit.wallet import held_to_asked
from adapters.wechat import mapping
from adapters.wechat.signing import (
    DecryptionFailed,
    PlatformVerifier,
    SignatureRefused,
    decrypt_resource,
)

log = logging.getLogger(__name__)

NOTIFY_PATH = "/wechatpay/notify"


class NotificationListener:
    """Serves the notify URL. Answers 204 to what it accepted (or may ignore) and 4xx with
    {"code": "FAIL"} to what it refused, so the platform delivers that one again."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        verifier: PlatformVerifier,
        apiv3_key: bytes,
        mchid: str,
        memo: OperationMemo,
        events: EventSink,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._server = HttpServer(self.handle, host=host, port=port)
        self._verifier = verifier
        self._apiv3_key = apiv3_key
        self._mchid = mchid
        self._memo = memo
        self._events = events
        self._clock = clock
        self.counts = {
            "published": 0,
            "duplicates": 0,
            "refused": 0,
            "ignored": 0,
            "withheld": 0,
        }

    @property
    def port(self) -> int:
        return self._server.port

    async def start(self) -> None:
        await self._server.start()

    async def close(self) -> None:
        await self._server.close()

    async def handle(self, request: HttpRequest) -> Reply:
        if request.path != NOTIFY_PATH:
            return Reply(404, b"")
        if request.method != "POST":
            return _fail(405, "POST only")
        try:
            self._verifier.check(request.headers, request.body, now=int(self._clock()))
        except SignatureRefused as exc:
            self.counts["refused"] += 1
            log.warning("notification refused", extra={"why": str(exc)})
            return _fail(401, f"signature refused: {exc}")
        try:
            envelope = json.loads(request.body)
            if (
                not isinstance(envelope, dict)
                or envelope.get("resource_type") != "encrypt-resource"
            ):
                raise ValueError("not an encrypted-resource notification")
            resource = envelope.get("resource")
            if not isinstance(resource, dict):
                raise ValueError("no resource")
            plain = decrypt_resource(self._apiv3_key, resource)
        except DecryptionFailed as exc:
            self.counts["refused"] += 1
            # Never log the key or the ciphertext: only that and why it failed.
            log.error("notification could not be decrypted", extra={"why": str(exc)})
            return _fail(400, "cannot decrypt the resource")
        except ValueError as exc:
            self.counts["refused"] += 1
            return _fail(400, f"malformed notification: {exc}")
        event = self._event(str(envelope.get("event_type", "")), plain)
        if event is None:
            self.counts["ignored"] += 1
        elif self._memo.final(event.reference) is not None:
            self.counts["duplicates"] += 1
        elif not self._held(event):
            self.counts["withheld"] += 1
        elif self._memo.settle(event.reference, event.result):
            self.counts["published"] += 1
            self._events.publish(event)
        else:
            # Already known (a duplicate, or the answer told it first): changes nothing.
            self.counts["duplicates"] += 1
        return Reply(204)

    def _event(self, event_type: str, plain: Mapping[str, Any]) -> ChannelEvent | None:
        if plain.get("mchid") != self._mchid:
            log.warning("notification for another merchant ignored")
            return None
        if event_type.startswith("TRANSACTION."):
            number = str(plain.get("out_trade_no", ""))
            attach = plain.get("attach")
            # The reference rides in `attach`; trust it only if it leads to the same order.
            ok = isinstance(attach, str) and mapping.out_trade_no(attach) == number
            reference = attach if ok and isinstance(attach, str) else number
            result = mapping.transaction_result(plain, OperationType.AUTHORIZE)
            operation = OperationType.AUTHORIZE
        elif event_type.startswith("REFUND."):
            reference = str(plain.get("out_refund_no", ""))
            result = mapping.refund_result(plain)
            operation = OperationType.REFUND
        else:
            return None
        if not reference or result.status is OperationStatus.PENDING:
            return None
        return ChannelEvent(reference=reference, operation=operation, result=result)

    def _held(self, event: ChannelEvent) -> bool:
        """Whether `event` may be published: a success only once held to the amount asked.

        A success for an operation with no asked amount on record (forgotten after the polling
        window, unknown after a restart), or one naming no amount, cannot be held to anything:
        it is acknowledged and neither published nor kept as final, and the switch's Inquire,
        which carries the amount and is checked against the platform's query, decides. A decline
        moves no money and is published as before.
        """
        if event.result.status is not OperationStatus.APPROVED:
            return True
        sent = self._memo.open(event.reference)
        asked = sent.amount if sent is not None else None
        if asked is None or event.result.approved_amount is None:
            log.warning(
                "a success notified that cannot be held to an asked amount: acknowledged, not "
                "published; the switch's Inquire decides",
                extra={
                    "reference": event.reference,
                    "op": event.operation.name,
                    "why": "no asked amount on record" if asked is None else "no amount notified",
                },
            )
            return False
        # A success for another amount is held PENDING (and logged): not published either.
        held = held_to_asked(event.result, asked, event.reference)
        return held.status is OperationStatus.APPROVED


def _fail(status: int, message: str) -> Reply:
    body = json.dumps({"code": "FAIL", "message": message}, ensure_ascii=False).encode()
    return Reply(status, body, {"Content-Type": "application/json"})
