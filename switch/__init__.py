"""The payment switch: the asyncio gRPC Gateway, its guards, routing and records."""

# Imported first for its gRPC defaults (see adapters/__init__.py), before any module of the
# switch imports grpc.
import adapters  # noqa: F401
