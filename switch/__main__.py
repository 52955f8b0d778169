"""`python -m switch` is the `payswitch` command."""

from switch.cli import main

raise SystemExit(main())
