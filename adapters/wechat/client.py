"""Transport to WeChat Pay API v3: signed JSON requests on kept-alive HTTP, answers verified."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.sdk.errors import InvalidResponseError, OutcomeUnknownError, UpstreamUnavailableError
from adapters.walletkit.httpclient import HttpClient
from adapters.wechat import mapping
from adapters.wechat.signing import PlatformVerifier, SignatureRefused, authorization, new_nonce

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Answer:
    """A verified answer: its HTTP status and its JSON object (empty for 204)."""

    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class WechatPayClient:
    """Calls the API as one merchant; every answer must carry a valid platform signature."""

    def __init__(
        self,
        *,
        http: HttpClient,
        mchid: str,
        merchant_key: rsa.RSAPrivateKey,
        merchant_serial: str,
        verifier: PlatformVerifier,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.http = http
        self._mchid = mchid
        self._key = merchant_key
        self._serial = merchant_serial
        self._verifier = verifier
        self._clock = clock

    async def call(
        self, method: str, target: str, payload: Mapping[str, Any] | None = None
    ) -> Answer:
        """Send one request; the verified answer, whatever its status.

        Raises InvalidResponseError for an answer without a valid, fresh, new platform
        signature (an unsigned 2xx is a forgery), or our own signature refused; and
        UpstreamUnavailableError when the platform refused the merchant account outright.
        """
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")) if payload else ""
        header = authorization(
            mchid=self._mchid,
            serial_no=self._serial,
            key=self._key,
            method=method,
            target=target,
            body=body,
            timestamp=str(int(self._clock())),
            nonce=new_nonce(),
        )
        headers = {"Authorization": header, "Accept": "application/json"}
        if body:
            headers["Content-Type"] = "application/json"
        response = await self.http.request(method, target, headers=headers, body=body.encode())
        what = f"{method} {target.split('?', 1)[0]}"
        try:
            self._verifier.check(response.headers, response.body, now=int(self._clock()))
        except SignatureRefused as exc:
            # Logged without keys or the answer's content: the text is untrusted.
            log.error("answer refused", extra={"call": what, "why": str(exc)})
            if response.status >= 500:
                raise OutcomeUnknownError(f"{what}: HTTP {response.status}, {exc}") from exc
            raise InvalidResponseError(f"{what}: answer refused: {exc}") from exc
        answer = Answer(response.status, _json_object(response.body, what))
        code = mapping.error_code(answer.body)
        if response.status == 401 and code == mapping.SIGN_ERROR:
            log.error("the platform refused our signature: check the merchant key and serial")
            raise InvalidResponseError(f"{what}: the platform refused our signature ({code})")
        if code in mapping.ACCOUNT_REFUSALS:
            raise UpstreamUnavailableError(f"{what}: the platform refused the account: {code}")
        return answer

    async def aclose(self) -> None:
        await self.http.aclose()


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    if not body:
        return {}
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise InvalidResponseError(f"{what}: answer is not JSON") from exc
    if not isinstance(value, dict):
        raise InvalidResponseError(f"{what}: answer is not a JSON object")
    return value
