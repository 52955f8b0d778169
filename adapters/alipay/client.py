"""Transport to the Alipay gateway: signed form posts over kept-alive HTTP, answers verified."""

from __future__ import annotations

import datetime
import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.alipay import mapping
from adapters.alipay.signing import (
    MalformedEnvelope,
    envelope_is_authentic,
    parse_envelope,
    sign_params,
)
from adapters.sdk.errors import InvalidResponseError, OutcomeUnknownError, UpstreamUnavailableError
from adapters.walletkit.httpclient import HttpClient

log = logging.getLogger(__name__)

# The platform's clock: request timestamps are Beijing time (UTC+8, no daylight saving).
BEIJING = datetime.timezone(datetime.timedelta(hours=8), "CST")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


def beijing_timestamp(now: float) -> str:
    """`now` (Unix seconds) as the platform's "yyyy-MM-dd HH:mm:ss" in Beijing time."""
    return datetime.datetime.fromtimestamp(now, BEIJING).strftime(TIMESTAMP_FORMAT)


class AlipayClient:
    """Calls one method of the open platform and returns the verified business object."""

    def __init__(
        self,
        *,
        gateway_url: str,
        app_id: str,
        app_private_key: rsa.RSAPrivateKey,
        platform_public_key: rsa.RSAPublicKey,
        http: HttpClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        parts = urllib.parse.urlsplit(gateway_url)
        self._target = f"{parts.path or '/'}?charset=utf-8"
        self._app_id = app_id
        self._app_key = app_private_key
        self._platform_key = platform_public_key
        self.http = http
        self._clock = clock

    def request_params(self, method: str, biz: Mapping[str, Any]) -> dict[str, str]:
        """The signed common parameters of one call."""
        params = {
            "app_id": self._app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": beijing_timestamp(self._clock()),
            "version": "1.0",
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
        }
        params["sign"] = sign_params(params, self._app_key)
        return params

    async def call(self, method: str, biz: Mapping[str, Any]) -> dict[str, Any]:
        """POST one call; the answer's business object once its signature is verified.

        Raises InvalidResponseError for an answer that is not authentic or not well formed,
        and UpstreamUnavailableError when the gateway refused the call without executing it.
        """
        body = urllib.parse.urlencode(self.request_params(method, biz)).encode()
        response = await self.http.request(
            "POST",
            self._target,
            headers={
                "Content-Type": "application/x-www-form-urlencoded;charset=utf-8",
                "Accept": "application/json",
            },
            body=body,
        )
        if response.status >= 500:
            raise OutcomeUnknownError(f"{method}: gateway answered HTTP {response.status}")
        if response.status != 200:
            raise InvalidResponseError(f"{method}: gateway answered HTTP {response.status}")
        try:
            envelope = parse_envelope(response.body, method)
        except MalformedEnvelope as exc:
            raise InvalidResponseError(f"{method}: malformed answer: {exc}") from exc
        if not envelope_is_authentic(envelope, self._platform_key):
            # Logged without the key or the answer's content: the text is untrusted.
            log.error(
                "answer failed verification with the platform public key",
                extra={"method": method, "signed": envelope.sign is not None},
            )
            why = "it is unsigned" if envelope.sign is None else "its signature does not verify"
            raise InvalidResponseError(
                f"{method}: answer refused: {why} with the platform public key"
            )
        code, sub_code = str(envelope.body.get("code")), str(envelope.body.get("sub_code", ""))
        if sub_code == mapping.INVALID_SIGNATURE:
            log.error("the platform refused our signature: check the app private key")
            raise InvalidResponseError(f"{method}: the platform refused our signature ({sub_code})")
        if code in mapping.GATEWAY_REFUSALS:
            raise UpstreamUnavailableError(
                f"{method}: gateway refused the call: {code} {sub_code}".rstrip()
            )
        return envelope.body

    async def aclose(self) -> None:
        await self.http.aclose()
