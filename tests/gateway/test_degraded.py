"""Degraded dashboards, deadlines and circuits seen through the gateway."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from dependency_injector import providers

from app.containers import Container
from app.gateway import create_app
from app.settings import GatewaySettings, Settings
from app.testing import Reply, ScriptedUpstream, closed_port_url
from tests.helpers import Sandbox, serve_app, service_settings

# A breaker that opens after 4 failed calls, and no retries, to keep tests short.
QUICK_BREAKER: dict[str, Any] = {
    "retries": 0,
    "breaker_minimum_calls": 4,
    "breaker_break_duration": 30.0,
}


@asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[aiohttp.ClientSession]:
    """Serve the gateway with these settings and yield a session aimed at it."""
    container = Container()
    container.settings.override(providers.Object(settings))
    async with (
        serve_app(create_app(container)) as url,
        aiohttp.ClientSession(base_url=url) as client,
    ):
        yield client


async def get_json(
    client: aiohttp.ClientSession, path: str, **kwargs: Any
) -> tuple[int, Any]:
    """GET a path and return the status and decoded JSON body."""
    async with client.get(path, **kwargs) as response:
        return response.status, await response.json()


class TestDegradedDashboard:
    """Optional parts fail soft, the required user fails hard."""

    async def test_degraded_dashboard_without_interview_service(
        self, sandbox: Sandbox
    ) -> None:
        """interview-service down: 200 with interviews null and an error entry."""
        settings = Settings(
            user_service=service_settings(sandbox.user_url),
            interview_service=service_settings(closed_port_url(), **QUICK_BREAKER),
        )
        async with gateway(settings) as client:
            status, body = await get_json(client, "/api/dashboard/1")

        assert status == 200
        assert body["user"]["id"] == "1"
        assert body["stats"]["userId"] == "1"
        assert body["interviews"] is None
        assert body["errors"] == [
            {
                "part": "interviews",
                "service": "interview-service",
                "kind": "connection",
                "status": None,
            }
        ]

    async def test_circuit_opens_and_shows_in_metrics_and_ready(
        self, sandbox: Sandbox
    ) -> None:
        """Repeated failures open interview-service's circuit, seen by operators."""
        settings = Settings(
            user_service=service_settings(sandbox.user_url),
            interview_service=service_settings(closed_port_url(), **QUICK_BREAKER),
        )
        async with gateway(settings) as client:
            for _ in range(5):
                status, body = await get_json(client, "/api/dashboard/1")
            async with client.get("/metrics") as response:
                metrics = await response.text()
            ready_status, ready = await get_json(client, "/health/ready")

        assert status == 200
        assert body["errors"][0]["kind"] == "circuit_open"
        assert 'service_circuit_state{service="interview-service"} 1.0' in metrics
        assert ready_status == 200
        assert ready["services"]["interview-service"]["circuit"] == "open"

    async def test_failed_stats_leave_stats_null(
        self, upstream: ScriptedUpstream, sandbox: Sandbox
    ) -> None:
        """A failing stats call only nulls the stats part."""
        user = {
            "id": "1",
            "email": "a@example.com",
            "firstName": "A",
            "lastName": "B",
            "role": "admin",
            "isActive": True,
            "createdAt": "2026-01-01T00:00:00Z",
        }
        upstream.route("/users/1", Reply.json(user))
        upstream.route("/users/1/stats", Reply.json({"message": "boom"}, 500))
        settings = Settings(
            user_service=service_settings(upstream.url, retries=0),
            interview_service=service_settings(sandbox.interview_url),
        )
        async with gateway(settings) as client:
            status, body = await get_json(client, "/api/dashboard/1")

        assert status == 200
        assert body["stats"] is None
        assert body["interviews"] is not None
        assert body["errors"][0]["part"] == "stats"
        assert body["errors"][0]["status"] == 500

    async def test_user_service_down_gives_503(self, sandbox: Sandbox) -> None:
        """Without user-service no dashboard can be built: 503."""
        settings = Settings(
            user_service=service_settings(closed_port_url(), retries=0),
            interview_service=service_settings(sandbox.interview_url),
        )
        async with gateway(settings) as client:
            status, body = await get_json(client, "/api/dashboard/1")

        assert status == 503
        assert body["service"] == "user-service"


class TestDeadline:
    """The gateway's deadline bounds the whole dashboard."""

    async def test_hanging_user_service_gives_504_at_deadline(
        self, upstream: ScriptedUpstream, sandbox: Sandbox
    ) -> None:
        """A user-service that never responds ends in 504 at the deadline."""
        upstream.script(Reply(hang=True))
        settings = Settings(
            user_service=service_settings(upstream.url, timeout=0.2),
            interview_service=service_settings(sandbox.interview_url, timeout=0.2),
            gateway=GatewaySettings(dashboard_deadline=0.3),
        )
        async with gateway(settings) as client:
            started = time.perf_counter()
            status, body = await get_json(client, "/api/dashboard/1")
            elapsed = time.perf_counter() - started

        assert status == 504
        # The 0.2 s attempt times out; no retry fits in the 0.1 s left.
        assert body["kind"] == "timeout"
        assert elapsed < 1.5

    async def test_caller_deadline_header_shortens_budget(
        self, upstream: ScriptedUpstream, sandbox: Sandbox
    ) -> None:
        """An incoming X-Request-Deadline-Ms shortens the budget sent downstream."""
        upstream.script(Reply.json({"message": "no"}, 404))
        settings = Settings(
            user_service=service_settings(upstream.url),
            interview_service=service_settings(sandbox.interview_url),
        )
        async with gateway(settings) as client:
            await get_json(
                client, "/api/dashboard/1", headers={"X-Request-Deadline-Ms": "250"}
            )

        sent = int(upstream.requests[0].headers["x-request-deadline-ms"])
        assert 0 < sent <= 250

    async def test_malformed_deadline_header_gives_400(self, sandbox: Sandbox) -> None:
        """A deadline header that is not a number is rejected."""
        async with gateway(sandbox.settings()) as client:
            status, body = await get_json(
                client, "/api/dashboard/1", headers={"X-Request-Deadline-Ms": "soon"}
            )

        assert status == 400
        assert body["error"] == "invalid_deadline"


class TestOptionalDeadline:
    """Optional parts end by their own, shorter deadline."""

    async def test_hanging_interviews_cost_only_their_deadline(
        self, upstream: ScriptedUpstream, sandbox: Sandbox
    ) -> None:
        """A hanging interview-service delays the page by the optional deadline."""
        upstream.script(Reply(hang=True))
        settings = Settings(
            user_service=service_settings(sandbox.user_url),
            interview_service=service_settings(upstream.url, timeout=2.0),
            gateway=GatewaySettings(dashboard_deadline=5.0, optional_part_deadline=0.3),
        )
        async with gateway(settings) as client:
            started = time.perf_counter()
            status, body = await get_json(client, "/api/dashboard/1")
            elapsed = time.perf_counter() - started

        assert status == 200
        assert body["interviews"] is None
        assert body["errors"][0]["kind"] == "deadline"
        assert elapsed < 1.5
