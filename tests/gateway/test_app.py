"""The gateway app over real HTTP, with the sandbox or with overrides."""

from __future__ import annotations

import asyncio
import gc
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from unittest.mock import AsyncMock

import aiohttp
import pytest
from dependency_injector import providers

from app.aggregators import DashboardAggregator
from app.containers import Container
from app.gateway import create_app
from app.gateway.app import GC_FIRST_THRESHOLD, tune_collector_on_startup
from app.models import Dashboard
from app.proxies import ServiceConnectionError, ServiceTimeoutError
from app.settings import Settings
from app.testing import ScriptedUpstream, closed_port_url
from tests.helpers import Sandbox, serve_app, service_settings

DASHBOARD_JSON: dict[str, Any] = {
    "user": {
        "id": "7",
        "email": "grace@example.com",
        "firstName": "Grace",
        "lastName": "Hopper",
        "role": "recruiter",
        "isActive": True,
        "createdAt": "2026-01-01T00:00:00Z",
    },
    "interviews": [],
    "stats": {
        "userId": "7",
        "interviewsCreated": 0,
        "candidatesInvited": 0,
        "quotaLimit": 5,
        "quotaUsed": 0,
        "lastActiveAt": None,
    },
}


@asynccontextmanager
async def gateway(container: Container) -> AsyncIterator[aiohttp.ClientSession]:
    """Serve the gateway on loopback and yield a session aimed at it."""
    async with (
        serve_app(create_app(container)) as url,
        aiohttp.ClientSession(base_url=url) as client,
    ):
        yield client


def container_for(settings: Settings) -> Container:
    """Build a container with the given settings."""
    container = Container()
    container.settings.override(providers.Object(settings))
    return container


async def get_json(client: aiohttp.ClientSession, path: str) -> tuple[int, Any]:
    """GET a path and return the status and the decoded JSON body."""
    async with client.get(path) as response:
        return response.status, await response.json()


class TestDashboardRoute:
    """GET /api/dashboard/{user_id} against the sandbox."""

    async def test_seeded_user_gives_200(self, sandbox: Sandbox) -> None:
        """A seeded user's dashboard is served as camelCase JSON."""
        async with gateway(container_for(sandbox.settings())) as client:
            status, body = await get_json(client, "/api/dashboard/1")

        assert status == 200
        assert body["user"]["id"] == "1"
        assert "firstName" in body["user"]
        assert len(body["interviews"]) <= 10
        assert body["stats"]["userId"] == "1"

    async def test_startup_tunes_the_collector(self, sandbox: Sandbox) -> None:
        """A gateway set up for serving freezes its heap and collects less often."""
        app = create_app(container_for(sandbox.settings()))
        tune_collector_on_startup(app)
        thresholds = gc.get_threshold()
        try:
            async with (
                serve_app(app) as url,
                aiohttp.ClientSession(base_url=url) as client,
            ):
                frozen = gc.get_freeze_count()
                first = gc.get_threshold()[0]
                status, _ = await get_json(client, "/api/dashboard/1")
        finally:
            gc.unfreeze()
            gc.set_threshold(*thresholds)

        assert frozen > 0
        assert first == GC_FIRST_THRESHOLD
        assert status == 200

    async def test_unknown_user_gives_404_json(self, sandbox: Sandbox) -> None:
        """An unknown user gives 404 with a JSON error naming user-service."""
        async with gateway(container_for(sandbox.settings())) as client:
            status, body = await get_json(client, "/api/dashboard/999999")

        assert status == 404
        assert body["error"] == "not_found"
        assert body["service"] == "user-service"

    async def test_closed_user_service_gives_503(self, sandbox: Sandbox) -> None:
        """With user-service on a closed port the gateway returns 503 JSON."""
        settings = Settings(
            user_service=service_settings(closed_port_url(), retries=2),
            interview_service=service_settings(sandbox.interview_url),
        )
        container = container_for(settings)
        async with gateway(container) as client:
            status, body = await get_json(client, "/api/dashboard/1")
            metrics_text = await (await client.get("/metrics")).text()

        assert status == 503
        assert body["service"] == "user-service"
        assert body["kind"] == "connection"
        retried = re.search(
            r'service_retries_total\{method="GET",service="user-service"\} (\d+)',
            metrics_text,
        )
        # get_user retries twice; stats, an optional part, has too short a
        # deadline for a retry of a 2 s attempt.
        assert retried is not None
        assert float(retried.group(1)) >= 2

    @pytest.mark.parametrize(
        "accept",
        [
            "application/openmetrics-text; version=abc",
            "application/openmetrics-text; version=1.0.0",
            "text/plain",
        ],
    )
    async def test_metrics_whatever_the_accept_header(
        self, sandbox: Sandbox, accept: str
    ) -> None:
        """A malformed OpenMetrics version in Accept gets the text format."""
        async with gateway(container_for(sandbox.settings())) as client:
            await get_json(client, "/api/dashboard/1")
            async with client.get("/metrics", headers={"Accept": accept}) as response:
                status = response.status
                text = await response.text()

        assert status == 200
        assert "# TYPE service_calls" in text

    async def test_metrics_after_dashboard(self, sandbox: Sandbox) -> None:
        """/metrics shows calls and duration buckets of both services."""
        async with gateway(container_for(sandbox.settings())) as client:
            await get_json(client, "/api/dashboard/1")
            async with client.get("/metrics") as response:
                text = await response.text()

        parts = {
            "user-service": ("get_user", "get_user_stats"),
            "interview-service": ("get_user_interviews",),
        }
        for service, operations in parts.items():
            for operation in operations:
                calls = (
                    f'service_calls_total{{method="GET",operation="{operation}",'
                    f'service="{service}",status="success"}} 1.0'
                )
                bucket = (
                    f'service_call_duration_milliseconds_bucket{{le="+Inf",'
                    f'method="GET",operation="{operation}",service="{service}"}} 1.0'
                )
                assert calls in text
                assert bucket in text


class TestErrorMapping:
    """Upstream failures and bad input become JSON errors."""

    @pytest.mark.parametrize(
        ("error", "status", "code"),
        [
            (
                ServiceConnectionError("user-service", None, "refused"),
                503,
                "upstream_unavailable",
            ),
            (
                ServiceTimeoutError("interview-service", None, "slow"),
                504,
                "upstream_timeout",
            ),
        ],
    )
    async def test_upstream_failure_status(
        self, error: Exception, status: int, code: str
    ) -> None:
        """Each kind of upstream failure gets its own status and error code."""
        container = Container()
        fake = AsyncMock(spec=DashboardAggregator)
        fake.get_user_dashboard.side_effect = error
        container.dashboard_aggregator.override(providers.Object(fake))

        async with gateway(container) as client:
            got_status, body = await get_json(client, "/api/dashboard/1")

        assert got_status == status
        assert body["error"] == code

    async def test_fake_aggregator_through_override(self) -> None:
        """A handler serves whatever the overridden aggregator returns."""
        container = Container()
        fake = AsyncMock(spec=DashboardAggregator)
        fake.get_user_dashboard.return_value = Dashboard.model_validate(DASHBOARD_JSON)
        container.dashboard_aggregator.override(providers.Object(fake))

        async with gateway(container) as client:
            status, body = await get_json(client, "/api/dashboard/7")

        assert status == 200
        assert body == {**DASHBOARD_JSON, "errors": [], "stale": []}
        fake.get_user_dashboard.assert_awaited_once_with("7")

    @pytest.mark.parametrize("user_id", ["..%2Fadmin", "a" * 1000, "a%20b", "%00"])
    async def test_invalid_user_id_gives_400(
        self, upstream: ScriptedUpstream, user_id: str
    ) -> None:
        """Ids outside the allowed characters are rejected before any upstream call."""
        settings = Settings(
            user_service=service_settings(upstream.url),
            interview_service=service_settings(upstream.url),
        )
        async with gateway(container_for(settings)) as client:
            status, body = await get_json(client, f"/api/dashboard/{user_id}")

        assert status == 400
        assert body["error"] == "invalid_user_id"
        assert upstream.hits == 0

    async def test_unknown_route_gives_404_json(self) -> None:
        """A route that does not exist returns JSON, not HTML."""
        async with gateway(Container()) as client:
            status, body = await get_json(client, "/nope")

        assert status == 404
        assert body["error"] == "not_found"

    async def test_hanging_aggregator_gives_504(self) -> None:
        """The handler's own bound returns 504 when the caller's deadline passes."""
        container = Container()
        fake = AsyncMock(spec=DashboardAggregator)

        async def hang(user_id: str) -> None:
            await asyncio.sleep(10)

        fake.get_user_dashboard.side_effect = hang
        container.dashboard_aggregator.override(providers.Object(fake))

        async with gateway(container) as client:
            started = time.monotonic()
            headers = {"X-Request-Deadline-Ms": "50"}
            async with client.get("/api/dashboard/1", headers=headers) as response:
                body = await response.json()
            took = time.monotonic() - started

        assert response.status == 504
        assert body["error"] == "deadline_exceeded"
        assert took < 2.0

    async def test_unexpected_error_gives_500_without_trace(self) -> None:
        """A bug in a handler answers 500 JSON with no traceback."""
        container = Container()
        fake = AsyncMock(spec=DashboardAggregator)
        fake.get_user_dashboard.side_effect = KeyError("secret internals")
        container.dashboard_aggregator.override(providers.Object(fake))

        async with (
            gateway(container) as client,
            client.get("/api/dashboard/1") as response,
        ):
            text = await response.text()
            status = response.status

        assert status == 500
        assert "Traceback" not in text
        assert "secret internals" not in text


class TestHealth:
    """Liveness and readiness."""

    async def test_live(self) -> None:
        """/health/live answers 200 while the process runs."""
        async with gateway(Container()) as client:
            status, body = await get_json(client, "/health/live")

        assert status == 200
        assert body == {"status": "alive"}

    async def test_ready_with_upstreams_up(self, sandbox: Sandbox) -> None:
        """/health/ready answers 200 when every upstream is healthy."""
        async with gateway(container_for(sandbox.settings())) as client:
            status, body = await get_json(client, "/health/ready")

        assert status == 200
        assert body["status"] == "ready"
        assert body["services"]["user-service"]["reachable"]
        assert body["services"]["interview-service"]["circuit"] == "closed"

    async def test_not_ready_without_user_service(self, sandbox: Sandbox) -> None:
        """/health/ready answers 503 when the required user-service is down."""
        settings = Settings(
            user_service=service_settings(closed_port_url()),
            interview_service=service_settings(sandbox.interview_url),
        )
        async with gateway(container_for(settings)) as client:
            status, body = await get_json(client, "/health/ready")

        assert status == 503
        assert body["status"] == "not_ready"
        assert not body["services"]["user-service"]["reachable"]

    async def test_ready_with_one_endpoint_down(self, sandbox: Sandbox) -> None:
        """/health/ready stays 200 while one user-service endpoint responds."""
        dead = closed_port_url()
        settings = Settings(
            user_service=service_settings(f"{dead},{sandbox.user_url}"),
            interview_service=service_settings(sandbox.interview_url),
        )
        async with gateway(container_for(settings)) as client:
            status, body = await get_json(client, "/health/ready")

        user_service = body["services"]["user-service"]
        endpoints = {item["url"]: item for item in user_service["endpoints"]}
        assert status == 200
        assert body["status"] == "ready"
        assert user_service["healthy"]
        assert not endpoints[dead]["reachable"]
        assert endpoints[dead]["state"] == "active"
        assert endpoints[sandbox.user_url]["healthy"]
        assert endpoints[sandbox.user_url]["statusCode"] == 200

    async def test_degraded_without_interview_service(self, sandbox: Sandbox) -> None:
        """An optional upstream down leaves the gateway ready but degraded."""
        settings = Settings(
            user_service=service_settings(sandbox.user_url),
            interview_service=service_settings(closed_port_url()),
        )
        async with gateway(container_for(settings)) as client:
            status, body = await get_json(client, "/health/ready")

        assert status == 200
        assert body["status"] == "degraded"
