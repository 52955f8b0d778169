"""The WeChat Pay simulator's notifier: signed, encrypted notifications, sent until acknowledged."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import logging
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.sdk.errors import AdapterError
from adapters.walletkit.httpclient import HttpClient
from adapters.wechat.signing import encrypt_resource, signed_headers
from adapters.wechat.simorders import BEIJING

log = logging.getLogger(__name__)

# How the simulator can spoil one delivery, to show what the merchant refuses.
TAMPERS = ("", "signature", "stale", "wrongkey", "ciphertext", "unsigned")


class Notifier:
    """Builds and posts notifications; a failed delivery is repeated after `retry_delays`."""

    def __init__(
        self,
        *,
        platform_key: rsa.RSAPrivateKey,
        platform_serial: str,
        apiv3_key: bytes,
        retry_delays: Sequence[float],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = platform_key
        self._serial = platform_serial
        self._apiv3_key = apiv3_key
        self._delays = list(retry_delays)
        self._clock = clock
        self._clients: dict[str, HttpClient] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._rogue: rsa.RSAPrivateKey | None = None
        self.last: dict[str, tuple[str, bytes]] = {}
        self.stats = {"attempts": 0, "delivered": 0, "given_up": 0}

    def build(
        self, *, event_type: str, summary: str, original_type: str, plaintext: Mapping[str, Any]
    ) -> bytes:
        """A notification body: the resource encrypted with the API v3 key."""
        created = datetime.datetime.fromtimestamp(self._clock(), BEIJING).isoformat(
            timespec="seconds"
        )
        body = {
            "id": str(uuid.uuid4()),
            "create_time": created,
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": summary,
            "resource": encrypt_resource(
                self._apiv3_key,
                plaintext,
                associated_data=original_type,
                original_type=original_type,
            ),
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    def send(self, key: str, url: str, body: bytes) -> None:
        """Deliver in the background, repeating until acknowledged or out of retries."""
        self.last[key] = (url, body)
        task = asyncio.create_task(self._deliver(url, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, body: bytes) -> None:
        for delay in [0.0, *self._delays]:
            await asyncio.sleep(delay)
            status, _ = await self.deliver_once(url, body)
            if 200 <= status < 300:
                self.stats["delivered"] += 1
                return
        self.stats["given_up"] += 1
        log.warning("notification given up after %d attempts", len(self._delays) + 1)

    async def deliver_once(self, url: str, body: bytes, *, tamper: str = "") -> tuple[int, bytes]:
        """One delivery attempt (fresh timestamp and nonce); the merchant's status and body."""
        self.stats["attempts"] += 1
        parts = urllib.parse.urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        client = self._clients.get(origin)
        if client is None:
            client = self._clients[origin] = HttpClient(origin, max_connections=4, timeout=5.0)
        now = int(self._clock())
        if tamper == "ciphertext":
            body = _spoil_ciphertext(body)
        headers = signed_headers(
            self._signing_key(tamper),
            self._serial,
            body,
            timestamp=now - 400 if tamper == "stale" else now,
        )
        if tamper == "signature":
            headers["Wechatpay-Signature"] = signed_headers(
                self._key, self._serial, body + b" ", timestamp=now
            )["Wechatpay-Signature"]
        if tamper == "unsigned":
            headers = {}
        headers["Content-Type"] = "application/json"
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            response = await client.request("POST", target or "/", headers=headers, body=body)
        except AdapterError as exc:
            log.info("notification not delivered: %s", exc.message)
            return 0, b""
        return response.status, response.body

    def _signing_key(self, tamper: str) -> rsa.RSAPrivateKey:
        if tamper != "wrongkey":
            return self._key
        if self._rogue is None:
            self._rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self._rogue

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self._clients.values():
            await client.aclose()


def _spoil_ciphertext(body: bytes) -> bytes:
    envelope = json.loads(body)
    sealed = bytearray(base64.b64decode(envelope["resource"]["ciphertext"]))
    sealed[0] ^= 0xFF
    envelope["resource"]["ciphertext"] = base64.b64encode(bytes(sealed)).decode()
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
