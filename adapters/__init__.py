"""Channel adapters: the SDK adapter authors import, and one package per channel."""

import os

# gRPC's core reads GRPC_EXPERIMENTS once, when the process first imports grpc, so the default is
# set here, before any module of the adapters (or of the switch and the bench, which import this
# package first) imports it: every worker gets it however it is started (`payswitch adapter`,
# `python -m adapters.sandbox.worker`, or an outside author's module that imports adapters.sdk).
# grpcio 1.85 accepts connections through its EventEngine listener; the older iomgr listener
# it can go back to costs the bare echo server 323-366 us of CPU per unary call against
# 393-437 us, and takes the switch's unary rate from 911-926 to 1,041-1,051 payments/s on 2 cores
# (bench/README.md, "gRPC's listener"). An operator's own setting, even an empty one (gRPC's
# defaults), is left as it is. A grpcio that no longer knows the name logs one line, "Unknown
# experiment", and runs with its defaults.
os.environ.setdefault("GRPC_EXPERIMENTS", "-event_engine_listener")
