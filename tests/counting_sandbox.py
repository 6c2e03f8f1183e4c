"""Sandbox services that count the requests they serve, for multi-process tests.

Run as ``python -m tests.counting_sandbox --user-port N --interview-port M``.
``GET /test/requests`` on either port returns that service's counts, keyed by
method and route template, such as ``"GET /users/{id}"``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections import Counter
from contextlib import AsyncExitStack

from aiohttp import web

from app.sandbox import create_interview_service_app, create_user_service_app

__all__ = ["COUNTS_PATH", "add_request_counter"]

COUNTS_PATH = "/test/requests"


def add_request_counter(app: web.Application) -> None:
    """Count every response of ``app`` by route and serve the counts."""
    counts: Counter[str] = Counter()

    async def count(request: web.Request, response: web.StreamResponse) -> None:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "<no route>"
        if route != COUNTS_PATH:
            counts[f"{request.method} {route}"] += 1

    async def get_counts(request: web.Request) -> web.Response:
        return web.json_response(dict(counts))

    app.on_response_prepare.append(count)
    app.router.add_get(COUNTS_PATH, get_counts)


async def serve(user_port: int, interview_port: int) -> None:
    """Serve both services on 127.0.0.1 until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    apps = [
        (create_user_service_app(), user_port),
        (create_interview_service_app(), interview_port),
    ]
    async with AsyncExitStack() as stack:
        for app, port in apps:
            add_request_counter(app)
            runner = web.AppRunner(app)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            await web.TCPSite(runner, "127.0.0.1", port).start()
        await stop.wait()


def main() -> None:
    """Parse the ports and serve until stopped."""
    parser = argparse.ArgumentParser(prog="python -m tests.counting_sandbox")
    parser.add_argument("--user-port", type=int, required=True)
    parser.add_argument("--interview-port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.user_port, args.interview_port))


if __name__ == "__main__":
    main()
