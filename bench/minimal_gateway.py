"""A hand-written dashboard gateway on a bare aiohttp session: the upper limit.

It makes the same three upstream calls as the real gateway with asyncio.gather
and returns their JSON as is, with no validation, retries, breaker, metrics or
logs. Run as ``python -m bench.minimal_gateway --port P --user-url U
--interview-url I [--loop uvloop]``. It prints ``BENCH_PORT <port>`` once it
listens.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from bench.upstreams import run_loop, serve

__all__ = ["create_minimal_gateway", "main"]

_SESSION = web.AppKey("session", aiohttp.ClientSession)
_URLS = web.AppKey("urls", dict)


def create_minimal_gateway(user_url: str, interview_url: str) -> web.Application:
    """Create the gateway app, whose session opens on start-up and closes on cleanup."""
    app = web.Application()
    app[_URLS] = {"user": user_url, "interview": interview_url}
    app.cleanup_ctx.append(_session)
    app.router.add_get("/api/dashboard/{user_id}", _dashboard)
    app.router.add_get("/health/live", _live)
    return app


async def _session(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=100, limit_per_host=50)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        app[_SESSION] = session
        yield


async def _fetch(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.json()


async def _dashboard(request: web.Request) -> web.Response:
    user_id = request.match_info["user_id"]
    session = request.app[_SESSION]
    urls = request.app[_URLS]
    user, interviews, stats = await asyncio.gather(
        _fetch(session, f"{urls['user']}/users/{user_id}"),
        _fetch(session, f"{urls['interview']}/users/{user_id}/interviews?limit=10"),
        _fetch(session, f"{urls['user']}/users/{user_id}/stats"),
    )
    dashboard = {
        "user": user,
        "interviews": interviews["interviews"],
        "stats": stats,
        "errors": [],
        "stale": [],
    }
    return web.json_response(dashboard)


async def _live(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


def main(argv: list[str] | None = None) -> int:
    """Serve the minimal gateway until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m bench.minimal_gateway")
    parser.add_argument(
        "--port", type=int, default=0, help="port to listen on (default: a free one)"
    )
    parser.add_argument("--user-url", required=True, help="base URL of user-service")
    parser.add_argument(
        "--interview-url", required=True, help="base URL of interview-service"
    )
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="event loop to serve on (default: asyncio)",
    )
    args = parser.parse_args(argv)
    app = create_minimal_gateway(args.user_url, args.interview_url)
    run_loop(serve(app, port=args.port), use_uvloop=args.loop == "uvloop")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
