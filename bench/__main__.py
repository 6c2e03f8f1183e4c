"""Run every benchmark: ``python -m bench --help``."""

from bench.run import main

if __name__ == "__main__":
    raise SystemExit(main())
