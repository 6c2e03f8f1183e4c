"""Run the load test: ``python -m soak --help``."""

from soak.run import main

raise SystemExit(main())
