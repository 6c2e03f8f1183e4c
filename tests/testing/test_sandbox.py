"""Tests for serve_sandbox and its SandboxServices."""

from __future__ import annotations

import time

import aiohttp
import pytest

from app.sandbox import SandboxFaults
from app.testing import serve_sandbox


async def health(session: aiohttp.ClientSession, base_url: str) -> tuple[int, str]:
    """Return the status and the service name of ``GET /health``."""
    async with session.get(f"{base_url}/health") as response:
        body = await response.json()
        return response.status, body["service"]


class TestServeSandbox:
    """serve_sandbox runs both services on loopback for the block."""

    async def test_serves_both_services(self) -> None:
        """Both URLs reach the service they are named after."""
        async with serve_sandbox() as services, aiohttp.ClientSession() as session:
            user_status, user_name = await health(session, services.user_url)
            interview_status, interview_name = await health(
                session, services.interview_url
            )

        assert user_status == 200
        assert user_name == "user-service"
        assert interview_status == 200
        assert interview_name == "interview-service"

    async def test_urls_are_loopback(self) -> None:
        """Both services listen on 127.0.0.1."""
        async with serve_sandbox() as services:
            assert services.user_url.startswith("http://127.0.0.1:")
            assert services.interview_url.startswith("http://127.0.0.1:")

    async def test_stops_after_block(self) -> None:
        """The services stop listening when the block ends."""
        async with serve_sandbox() as services:
            url = services.user_url
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectionError):
                await health(session, url)

    async def test_uses_given_faults(self) -> None:
        """Faults passed in reach both services."""
        faults = SandboxFaults()
        faults.fail("interview_service_health", 503)
        async with (
            serve_sandbox(faults=faults) as services,
            aiohttp.ClientSession() as session,
            session.get(f"{services.interview_url}/health") as response,
        ):
            status = response.status
        assert services.faults is faults
        assert status == 503

    async def test_applies_latency(self) -> None:
        """latency_ms delays every response."""
        async with (
            serve_sandbox(latency_ms=100) as services,
            aiohttp.ClientSession() as session,
        ):
            started = time.monotonic()
            await health(session, services.user_url)
            elapsed = time.monotonic() - started
        assert elapsed >= 0.1

    async def test_fresh_data_each_time(self) -> None:
        """Each call serves a new copy of the seeded data."""
        path = "/users/1/quota/reservations"
        async with aiohttp.ClientSession() as session:
            bodies = []
            for _ in range(2):
                async with (
                    serve_sandbox() as services,
                    session.post(services.user_url + path) as response,
                ):
                    bodies.append(await response.json())
        assert bodies[0]["quotaUsed"] == bodies[1]["quotaUsed"]
