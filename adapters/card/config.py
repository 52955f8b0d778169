"""The card channel's settings, parsed once and checked at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adapters.card.client import ClientConfig
from adapters.card.mapping import Acceptor
from adapters.card.saf import SafConfig


@dataclass(frozen=True, slots=True)
class CardConfig:
    """Everything the card adapter needs; times in seconds. Errors name the setting."""

    acquirer_host: str
    acquirer_port: int
    terminal_id: str
    merchant_id: str
    saf_file: Path
    acquirer_id: str = "0" * 11
    connections: int = 1
    connect_timeout: float = 2.0
    response_timeout: float = 5.0
    echo_interval: float = 30.0
    frame_timeout: float = 5.0
    reconnect_base: float = 0.2
    reconnect_cap: float = 10.0
    saf_retry_base: float = 1.0
    saf_retry_cap: float = 60.0
    saf_max_attempts: int = 20
    saf_concurrency: int = 8
    fsync: bool = True

    def __post_init__(self) -> None:
        if not self.acquirer_host:
            raise ValueError("acquirer: host must not be empty")
        if not 0 < self.acquirer_port < 65536:
            raise ValueError("acquirer: port must be 1 to 65535")
        # Building these validates every remaining setting with a message naming it.
        self.client()
        self.saf()

    @property
    def acceptor(self) -> Acceptor:
        return Acceptor(self.terminal_id, self.merchant_id, self.acquirer_id)

    def client(self) -> ClientConfig:
        return ClientConfig(
            host=self.acquirer_host,
            port=self.acquirer_port,
            acceptor=self.acceptor,
            connections=self.connections,
            connect_timeout=self.connect_timeout,
            response_timeout=self.response_timeout,
            echo_interval=self.echo_interval,
            frame_timeout=self.frame_timeout,
            backoff_base=self.reconnect_base,
            backoff_cap=self.reconnect_cap,
        )

    def saf(self) -> SafConfig:
        return SafConfig(
            retry_base=self.saf_retry_base,
            retry_cap=self.saf_retry_cap,
            max_attempts=self.saf_max_attempts,
            concurrency=self.saf_concurrency,
            response_timeout=self.response_timeout,
        )
