"""A bare grpc.aio server on uvloop answering the Gateway's Authorize path with a fixed reply."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import Any

import grpc
import uvloop

from bench import payloads


class EchoServer:
    """The ceiling for a Python gRPC server here: no parsing, no work, same message sizes.

    It takes any request on GatewayService/Authorize (and Capture, Refund) as raw bytes and
    answers with a pre-built AuthorizeResponse of the size the switch sends, so a harness
    pointed at it runs exactly the code it runs against the switch.
    """

    def __init__(self) -> None:
        self.served = 0
        self._reply = payloads.echo_response()

    async def _answer(self, request: bytes, context: Any) -> bytes:
        self.served += 1
        return self._reply

    def handler(self) -> grpc.GenericRpcHandler:
        # No serializers: the request and the reply stay bytes end to end.
        method = grpc.unary_unary_rpc_method_handler(self._answer)
        return grpc.method_handlers_generic_handler(
            payloads.GATEWAY_SERVICE,
            {"Authorize": method, "Capture": method, "Refund": method},
        )

    async def serve(self, listen: str, ready: asyncio.Event | None = None) -> None:
        """Serve on `listen` until cancelled or SIGTERM/SIGINT."""
        server = grpc.aio.server()
        server.add_generic_rpc_handlers([self.handler()])
        port = server.add_insecure_port(listen)
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        host = listen.rpartition(":")[0]
        print(f"echo server listening on {host}:{port}", flush=True)
        if ready is not None:
            ready.set()
        try:
            await stop.wait()
        finally:
            await server.stop(grace=1.0)
            print(f"echo server served {self.served} calls", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """`payswitch bench echo-server --listen ADDR` / `python -m bench.baseline --listen ADDR`."""
    parser = argparse.ArgumentParser(
        prog="payswitch bench echo-server", description=EchoServer.__doc__
    )
    parser.add_argument("--listen", default="127.0.0.1:50052", help="HOST:PORT (port 0: any)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    uvloop.run(EchoServer().serve(args.listen))
    return 0
