"""HTTP load generator used when wrk is not installed: ``python -m bench.loadgen``.

It keeps ``--connections`` requests in flight for ``--duration`` seconds, at
most ``--max-requests`` in all, and prints one JSON object with the figures
that bench.gateway reads from wrk. It runs on uvloop when installed.
"""

from __future__ import annotations

import argparse
import ipaddress
import json

import aiohttp
from yarl import URL

from bench.load import closed_loop, percentile
from bench.upstreams import run_loop

__all__ = ["main"]


async def _generate(
    url: str, connections: int, duration: float, max_requests: int
) -> dict[str, float]:
    non_2xx = 0
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:

        async def call() -> None:
            nonlocal non_2xx
            async with session.get(url) as response:
                await response.read()
                if not 200 <= response.status < 400:
                    non_2xx += 1

        run = await closed_loop(
            call,
            concurrency=connections,
            duration=duration,
            max_calls=max_requests,
            record_latency=True,
        )
    return {
        "requests": run.calls,
        "seconds": run.seconds,
        "rps": run.rps,
        "p50_ms": percentile(run.latencies, 0.50) * 1000,
        "p99_ms": percentile(run.latencies, 0.99) * 1000,
        "non_2xx": non_2xx,
        "errors": run.errors,
    }


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    """Load one URL and print the result as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("url", help="loopback URL to request with GET")
    parser.add_argument(
        "--connections", type=int, default=32, help="requests in flight (default: 32)"
    )
    parser.add_argument(
        "--duration", type=float, default=3.0, help="seconds of load (default: 3)"
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=200_000,
        help="requests at most, whatever the duration (default: 200000)",
    )
    args = parser.parse_args(argv)
    host = URL(args.url).host or ""
    if not _is_loopback(host):
        parser.error(f"the URL must name a loopback address, got host {host!r}")
    result: dict[str, float] = {}

    async def run() -> None:
        result.update(
            await _generate(
                args.url, args.connections, args.duration, args.max_requests
            )
        )

    run_loop(run(), use_uvloop=True)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
