"""Runner that serves the sandbox user-service and interview-service together."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Literal

from aiohttp import web
from loguru import logger

from app.sandbox.interview_service import create_interview_service_app
from app.sandbox.user_service import create_user_service_app

SandboxServices = Literal["all", "user", "interview"]
SANDBOX_SERVICES: tuple[SandboxServices, ...] = ("all", "user", "interview")


async def run_sandbox(
    *,
    host: str = "127.0.0.1",
    user_port: int = 3003,
    interview_port: int = 3004,
    latency_ms: float = 0,
    stop: asyncio.Event | None = None,
    services: SandboxServices = "all",
    started: asyncio.Event | None = None,
) -> None:
    """Serve the sandbox services on this event loop until ``stop`` is set.

    ``services`` picks both (``"all"``) or only ``"user"`` or ``"interview"``, so
    that each can run in its own process; the port of a skipped one is unused.
    Without ``stop`` the services run until the task is cancelled. Port 0 picks a
    free port, and the start log line names the port actually bound. ``started``
    is set once every service listens.
    """
    if services not in SANDBOX_SERVICES:
        message = f"services must be one of {SANDBOX_SERVICES}, got {services!r}"
        raise ValueError(message)
    apps: list[tuple[str, web.Application, int]] = []
    if services in ("all", "user"):
        user_app = create_user_service_app(latency_ms=latency_ms)
        apps.append(("user-service", user_app, user_port))
    if services in ("all", "interview"):
        interview_app = create_interview_service_app(latency_ms=latency_ms)
        apps.append(("interview-service", interview_app, interview_port))
    async with AsyncExitStack() as stack:
        for name, app, port in apps:
            runner = web.AppRunner(app)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            await web.TCPSite(runner, host, port).start()
            _log_start(name, runner)

        if started is not None:
            started.set()
        await (stop or asyncio.Event()).wait()
        logger.info("Sandbox services are stopping")


def _log_start(name: str, runner: web.AppRunner) -> None:
    for address in runner.addresses:
        bound_host, bound_port = address[0], address[1]
        logger.bind(service=name, host=bound_host, port=bound_port).info(
            "Sandbox {} listening on {}:{}", name, bound_host, bound_port
        )
