"""Upstream servers of the benchmarks, each run as ``python -m bench.upstreams``.

``fixed`` serves the three dashboard calls with the sandbox's bodies for user 1,
prepared once, so that serving costs as little as aiohttp allows. ``outage``
returns 503 for every request and counts the requests. ``user`` and
``interview`` are the sandbox apps. Each prints ``BENCH_PORT <port>`` once it
listens and stops on SIGTERM. They run on uvloop when it is installed, so that
the upstream takes as little of the shared CPU as possible.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from loguru import logger

from app.sandbox import create_interview_service_app, create_user_service_app
from bench.processes import READY_PREFIX

__all__ = [
    "COUNT_PATH",
    "DASHBOARD_PATHS",
    "main",
    "run_loop",
    "sandbox_bodies",
    "serve",
]

# The path of the outage upstream that returns its request count, uncounted.
COUNT_PATH = "/bench/requests"
# The three calls of one dashboard of user 1, as the proxies send them.
DASHBOARD_PATHS = {
    "user": ("user", "/users/1"),
    "stats": ("user", "/users/1/stats"),
    "interviews": ("interview", "/users/1/interviews?limit=10"),
}
_JSON = "application/json"


def sandbox_bodies() -> dict[str, bytes]:
    """Return the sandbox's bodies of the three dashboard calls of user 1."""
    return asyncio.run(_fetch_sandbox_bodies())


async def _fetch_sandbox_bodies() -> dict[str, bytes]:
    apps = {
        "user": create_user_service_app(),
        "interview": create_interview_service_app(),
    }
    bodies: dict[str, bytes] = {}
    for service, app in apps.items():
        async with TestClient(TestServer(app)) as client:
            for part, (owner, path) in DASHBOARD_PATHS.items():
                if owner != service:
                    continue
                response = await client.get(path)
                if response.status != 200:
                    message = f"sandbox returned {response.status} for GET {path}"
                    raise RuntimeError(message)
                bodies[part] = await response.read()
    return bodies


def create_fixed_app(bodies: dict[str, bytes]) -> web.Application:
    """Create an app that serves the dashboard routes with fixed bodies."""

    def fixed(
        body: bytes,
    ) -> Callable[[web.Request], Coroutine[Any, Any, web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type=_JSON)

        return handler

    app = web.Application()
    app.router.add_get("/health", fixed(b'{"status": "ok"}'))
    app.router.add_get("/users/{id}", fixed(bodies["user"]))
    app.router.add_get("/users/{id}/stats", fixed(bodies["stats"]))
    app.router.add_get("/users/{id}/interviews", fixed(bodies["interviews"]))
    return app


def create_outage_app() -> web.Application:
    """Create an app that returns 503 for every request and counts the requests."""
    counted = 0
    body = json.dumps({"message": "service unavailable"}).encode()

    async def unavailable(request: web.Request) -> web.Response:
        nonlocal counted
        counted += 1
        return web.Response(status=503, body=body, content_type=_JSON)

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"requests": counted})

    app = web.Application()
    app.router.add_get(COUNT_PATH, count)
    app.router.add_route("*", "/{tail:.*}", unavailable)
    return app


async def serve(app: web.Application, *, port: int = 0) -> None:
    """Serve ``app`` on a loopback port until SIGTERM or SIGINT.

    Port 0 picks a free port. The server prints ``BENCH_PORT <port>`` on stdout
    once it listens.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print(f"{READY_PREFIX} {runner.addresses[0][1]}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def run_loop(main: Coroutine[Any, Any, None], *, use_uvloop: bool) -> None:
    """Run ``main`` on uvloop when asked and installed, else on asyncio's loop."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            use_uvloop = False
    if use_uvloop:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main)
    else:
        asyncio.run(main)


def _build_app(kind: str, latency_ms: float) -> web.Application:
    if kind == "fixed":
        return create_fixed_app(sandbox_bodies())
    if kind == "outage":
        return create_outage_app()
    if kind == "user":
        return create_user_service_app(latency_ms=latency_ms)
    return create_interview_service_app(latency_ms=latency_ms)


def main(argv: list[str] | None = None) -> int:
    """Serve one upstream until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.upstreams")
    parser.add_argument("kind", choices=("fixed", "outage", "user", "interview"))
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="milliseconds by which the sandbox delays each response (default: 0)",
    )
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop of the server (default: uvloop when installed)",
    )
    args = parser.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    app = _build_app(args.kind, args.latency_ms)
    run_loop(serve(app), use_uvloop=args.loop == "uvloop")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
