"""A real switch (on a real Redis) in front of one wallet worker, for end-to-end tests."""

from __future__ import annotations

import asyncio
import pathlib
import secrets

from payswitch.common.v1 import money_pb2, payment_method_pb2, payment_status_pb2
from payswitch.gateway.v1 import gateway_service_pb2 as gw
from payswitch.gateway.v1 import payment_pb2
from switch.stack import ChannelSpec, config_toml
from tests.integration.switch.conftest import API_KEY, Client, Switch
from tests.support import free_port

PS = payment_status_pb2


def start_switch(
    tmp_path: pathlib.Path, redis_url: str, channel: str, worker_port: int, *, reconcile_ms: int
) -> Switch:
    """A switch routing to the one channel; its reconciler inquires every `reconcile_ms`."""
    key_file = tmp_path / "fingerprint.key"
    key_file.write_text(secrets.token_hex(32))
    port = free_port()
    toml = config_toml(
        listen=f"127.0.0.1:{port}",
        redis_url=redis_url,
        api_key=API_KEY,
        channels=[ChannelSpec(name=channel, adapter=channel, port=worker_port, timeout_ms=3000)],
        fingerprint_key_file=str(key_file),
    )
    toml += f"\n[reconciler]\ninterval_ms = {reconcile_ms}\ninitial_backoff_ms = 100\n"
    config = tmp_path / "switch.toml"
    config.write_text(toml)
    switch = Switch(port=port, config=config, log=tmp_path / "switch.log")
    switch.start()
    return switch


def cny(fen: int) -> money_pb2.Money:
    return money_pb2.Money(amount_minor=fen, currency="CNY")


def pay(method: payment_method_pb2.PaymentMethod, fen: int) -> gw.AuthorizeRequest:
    return gw.AuthorizeRequest(
        idempotency_key="idem-" + secrets.token_hex(8),
        amount=cny(fen),
        payment_method=method,
        capture_mode=payment_pb2.CAPTURE_MODE_AUTOMATIC,
        merchant_reference="order-1",
    )


def refund(payment_id: str, fen: int) -> gw.RefundRequest:
    return gw.RefundRequest(
        idempotency_key="idem-" + secrets.token_hex(8), payment_id=payment_id, amount=cny(fen)
    )


async def final_status(client: Client, payment_id: str, timeout_s: float = 15.0) -> list[int]:
    """The statuses WatchPayment streams until the payment is no longer pending."""
    statuses: list[int] = []

    async def watch() -> None:
        request = gw.WatchPaymentRequest(payment_id=payment_id)
        async for update in client.WatchPayment(request, timeout=timeout_s):
            statuses.append(update.payment.status)

    await asyncio.wait_for(watch(), timeout_s)
    return statuses
