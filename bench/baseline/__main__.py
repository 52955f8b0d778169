"""`python -m bench.baseline --listen ADDR` runs the echo server."""

from bench.baseline.echo_server import main

raise SystemExit(main())
