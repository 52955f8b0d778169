"""A bare grpc.aio server on uvloop answering the Gateway's Authorize path with a fixed reply."""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import uvloop

from bench import payloads


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class EchoServer:
    """The ceiling for a Python gRPC server here: no parsing, no work, same message sizes.

    It takes any request on GatewayService/Authorize (and Capture, Refund) as raw bytes and
    answers with a pre-built AuthorizeResponse of the size the switch sends, so a harness
    pointed at it runs exactly the code it runs against the switch. StreamPayments answers
    each message with the same reply under the message's id.
    """

    def __init__(self) -> None:
        self.served = 0
        self._reply = payloads.echo_response()
        # A StreamPaymentsResponse is its id, then this: the same reply as its `authorize`.
        self._stream_tail = payloads.length_delimited(2, self._reply)

    async def _answer(self, request: bytes, context: Any) -> bytes:
        self.served += 1
        return self._reply

    async def _stream(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        # Each StreamPaymentsRequest opens with its id (field 1); the answer echoes it.
        async for request in requests:
            self.served += 1
            yield payloads.varint_field(1, payloads.leading_varint_field(request)) + (
                self._stream_tail
            )

    def handler(self) -> grpc.GenericRpcHandler:
        # No serializers: the request and the reply stay bytes end to end.
        method = grpc.unary_unary_rpc_method_handler(self._answer)
        return grpc.method_handlers_generic_handler(
            payloads.GATEWAY_SERVICE,
            {
                "Authorize": method,
                "Capture": method,
                "Refund": method,
                "StreamPayments": grpc.stream_stream_rpc_method_handler(self._stream),
            },
        )

    async def serve(self, listen: str, ready: asyncio.Event | None = None) -> None:
        """Serve on `listen` until cancelled or SIGTERM/SIGINT."""
        # No SO_REUSEPORT: a second server on a busy port must fail, not share the load unseen.
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers([self.handler()])
        port = server.add_insecure_port(listen)
        await server.start()
        cpu_at_start = _cpu_s()
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
            # CPU spent serving, start-up (imports) excluded.
            cpu_s = _cpu_s() - cpu_at_start
            print(f"echo server served {self.served} calls using {cpu_s:.3f} s of CPU", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """`payswitch bench echo-server --listen ADDR` / `python -m bench.baseline --listen ADDR`."""
    parser = argparse.ArgumentParser(
        prog="payswitch bench echo-server", description=EchoServer.__doc__
    )
    parser.add_argument("--listen", default="127.0.0.1:50052", help="HOST:PORT (port 0: any)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        uvloop.run(EchoServer().serve(args.listen))
    except RuntimeError as exc:  # grpc's way of saying the port could not be bound
        print(f"echo server: {exc}", file=sys.stderr)
        return 1
    return 0
