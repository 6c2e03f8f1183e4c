"""Run the command-line interface: ``python -m app --help``."""

from app.cli import main

raise SystemExit(main())
