"""Sandbox services served on free loopback ports for the length of a test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from app.sandbox import (
    SandboxFaults,
    create_interview_service_app,
    create_user_service_app,
)


@dataclass(frozen=True)
class SandboxServices:
    """Base URLs of a running sandbox user-service and interview-service.

    ``faults`` is shared by both services, so a test can inject a failure into
    any route by name, see `SandboxFaults`.
    """

    user_url: str
    interview_url: str
    faults: SandboxFaults


@asynccontextmanager
async def serve_sandbox(
    *, latency_ms: float = 0, faults: SandboxFaults | None = None
) -> AsyncIterator[SandboxServices]:
    """Serve fresh sandbox services with seeded data on 127.0.0.1 ports.

    Port 0 lets the system pick free ports. Without ``faults`` the services get a
    new, empty `SandboxFaults`.
    """
    shared_faults = SandboxFaults() if faults is None else faults
    user_app = create_user_service_app(latency_ms=latency_ms, faults=shared_faults)
    interview_app = create_interview_service_app(
        latency_ms=latency_ms, faults=shared_faults
    )
    async with AsyncExitStack() as stack:
        user_url = await stack.enter_async_context(_serve(user_app))
        interview_url = await stack.enter_async_context(_serve(interview_app))
        yield SandboxServices(user_url, interview_url, shared_faults)


@asynccontextmanager
async def _serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
