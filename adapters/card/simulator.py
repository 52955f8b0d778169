"""A simulated ISO 8583 acquirer host on TCP, strict like a real one, for tests and benches.

    python -m adapters.card.simulator --listen 127.0.0.1:PORT [--state FILE] [--slow-seconds S]

Frames carry a 2-byte big-endian length. A frame that does not decode gets a format-error
answer (DE39 30) when its MTI and STAN can be read, and is otherwise ignored; a truncated frame
or an impossible length closes the connection. Financial requests are refused (DE39 91) until
the connection signs on. The rules and the test cards live in host.py and testcards.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from adapters.card import framing, spec
from adapters.card.host import AcquirerHost
from adapters.card.mapping import FORMAT_ERROR, SIGN_OFF, SIGN_ON
from adapters.card.spec import Message
from adapters.sdk.serving import StreamServer

log = logging.getLogger(__name__)


class Simulator:
    """The TCP side: framing, decoding, sign-on state and (possibly delayed) answers."""

    def __init__(self, host: AcquirerHost, *, frame_timeout: float = 5.0) -> None:
        self.host = host
        self._frame_timeout = frame_timeout
        self._streams = StreamServer(self._serve)
        self.malformed = 0

    async def start(self, address: str, port: int) -> int:
        """Listen; returns the port (useful with port 0)."""
        return await self._streams.start(address, port)

    async def stop(self) -> None:
        """Stops accepting and closes every connection, one being accepted included."""
        await self._streams.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        signed_on = False
        late: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    raw = await framing.read_frame(reader, self._frame_timeout)
                except framing.ConnectionClosed:
                    break
                except framing.FrameError as exc:
                    log.warning("closing a connection: %s", exc)
                    break
                try:
                    doc = spec.decode(raw)
                except spec.MessageError as exc:
                    self.malformed += 1
                    log.warning("malformed request: %s", exc)
                    self._send(writer, _format_error(exc.routing))
                    continue
                if doc["t"] == "0800" and doc.get("70") == SIGN_ON:
                    signed_on = True
                elif doc["t"] == "0800" and doc.get("70") == SIGN_OFF:
                    signed_on = False
                action = self.host.handle(doc, signed_on)
                if action.reply is None:
                    continue
                if action.delay > 0:
                    t = asyncio.create_task(self._later(writer, action.reply, action.delay))
                    late.add(t)
                    t.add_done_callback(late.discard)
                else:
                    self._send(writer, action.reply)
                    await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for t in list(late):
                t.cancel()
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _later(self, writer: asyncio.StreamWriter, reply: Message, delay: float) -> None:
        await asyncio.sleep(delay)
        self._send(writer, reply)

    @staticmethod
    def _send(writer: asyncio.StreamWriter, reply: Message | None) -> None:
        if reply is None or writer.is_closing():
            return
        try:
            writer.write(framing.frame(spec.encode(reply)))
        except (spec.MessageError, framing.FrameError) as exc:
            log.error("could not encode an answer: %s", exc)


def _format_error(routing: Message) -> Message | None:
    """A DE39 30 answer addressed with whatever of MTI, STAN and terminal could be read."""
    mti = routing.get("t", "")
    if len(mti) != 4 or not mti.isdigit() or not spec.is_request(mti):
        return None
    reply = {"t": spec.response_mti(mti), "39": FORMAT_ERROR}
    reply.update({k: v for k, v in routing.items() if k in ("11", "41")})
    try:
        spec.validate(reply)
    except spec.MessageError:
        return {"t": spec.response_mti(mti), "39": FORMAT_ERROR}
    return reply


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT")
    return host, int(port)


async def _run(ns: argparse.Namespace) -> None:
    host = AcquirerHost(state_file=ns.state, slow_seconds=ns.slow_seconds)
    sim = Simulator(host, frame_timeout=ns.frame_timeout)
    port = await sim.start(ns.listen[0], ns.listen[1])
    print(f"card simulator listening on {ns.listen[0]}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sim.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adapters.card.simulator", description=__doc__)
    parser.add_argument("--listen", type=_address, required=True, help="HOST:PORT (port 0: any)")
    parser.add_argument("--state", type=Path, default=None, help="keep the host's memory here")
    parser.add_argument("--slow-seconds", type=float, default=3.0, help="delay of the slow card")
    parser.add_argument("--frame-timeout", type=float, default=5.0, help="wait for a frame's rest")
    parser.add_argument("--log-level", default="INFO")
    ns = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=ns.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(_run(ns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
