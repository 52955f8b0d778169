"""`python -m bench ...` is `payswitch bench ...`."""

from bench.cli import main

raise SystemExit(main())
