"""The payment switch: the asyncio gRPC Gateway, its guards, routing and records."""
