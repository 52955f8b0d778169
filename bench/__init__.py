"""The load-testing harness for the hot path and its baseline servers."""

# Imported first for its gRPC defaults (see adapters/__init__.py): the echo server, the ceiling,
# runs with the same gRPC settings as the switch it is compared with.
import switch  # noqa: F401
