"""Runner that serves the sandbox user-service and interview-service together."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from aiohttp import web
from loguru import logger

from app.sandbox.interview_service import create_interview_service_app
from app.sandbox.user_service import create_user_service_app


async def run_sandbox(
    *,
    host: str = "127.0.0.1",
    user_port: int = 3003,
    interview_port: int = 3004,
    latency_ms: float = 0,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve both sandbox services on this event loop until ``stop`` is set.

    Without ``stop`` the services run until the task is cancelled. Port 0 picks a
    free port, and the start log line names the port actually bound.
    """
    services = (
        ("user-service", create_user_service_app(latency_ms=latency_ms), user_port),
        (
            "interview-service",
            create_interview_service_app(latency_ms=latency_ms),
            interview_port,
        ),
    )
    async with AsyncExitStack() as stack:
        for name, app, port in services:
            runner = web.AppRunner(app)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            await web.TCPSite(runner, host, port).start()
            _log_start(name, runner)

        await (stop or asyncio.Event()).wait()
        logger.info("Sandbox services are stopping")


def _log_start(name: str, runner: web.AppRunner) -> None:
    for address in runner.addresses:
        bound_host, bound_port = address[0], address[1]
        logger.bind(service=name, host=bound_host, port=bound_port).info(
            "Sandbox {} listening on {}:{}", name, bound_host, bound_port
        )
