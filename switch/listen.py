"""Whether the switch's address is free to listen on, asked before anything starts."""

from __future__ import annotations

import socket


class ListenError(Exception):
    """The switch's address cannot be listened on."""


def check_listen(listen: str) -> None:
    """Bind the address once without SO_REUSEPORT: ListenError when another process holds it."""
    host, _, port_text = listen.rpartition(":")
    if listen.startswith("unix:") or int(port_text) == 0:
        return
    port = int(port_text)
    bare = host.removeprefix("[").removesuffix("]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As gRPC binds: a port left with connections in TIME_WAIT is free, a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((bare, port))
        except OSError as exc:
            raise ListenError(f"cannot listen on {listen}: {exc.strerror}") from exc
