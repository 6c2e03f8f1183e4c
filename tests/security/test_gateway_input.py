"""The gateway rejects bad input with JSON and never leaks traces or bodies."""

from __future__ import annotations

import json
from unittest.mock import AsyncMock

import aiohttp
import pytest
from dependency_injector import providers

from app.aggregators import DashboardAggregator
from app.containers import Container
from app.gateway import create_app
from app.testing import Reply, ScriptedUpstream
from tests.helpers import serve_app
from tests.security.support import USER_JSON, fetch, serve_gateway, settings_for

MARKER = "marker-secret-4b9e"

BAD_IDS = [
    "..%2Fadmin",
    "%2e%2e",
    "%2E%2E%2Fadmin",
    "..",
    "a%2Fb",
    "x" * 1000,
    "%00",
    "a%00b",
    "%C3%A9",
    "%F0%9F%99%82",
    "a%20b",
    "a%0D%0AX-Evil:%201",
    "a%3Fx%3D1",
    "a.b",
    "1;drop",
]


class TestUserId:
    """Validation of user_id before any upstream call."""

    @pytest.mark.parametrize("raw_id", BAD_IDS, ids=lambda raw: raw[:16])
    async def test_bad_id_gives_400(
        self, raw_id: str, upstream: ScriptedUpstream
    ) -> None:
        """An id outside [A-Za-z0-9_-]{1,64} gets 400 JSON and reaches no upstream."""
        async with (
            serve_gateway(settings_for(upstream.url)) as url,
            aiohttp.ClientSession() as client,
        ):
            status, text, content_type = await fetch(
                client, f"{url}/api/dashboard/{raw_id}"
            )

        assert status == 400
        assert content_type == "application/json"
        assert json.loads(text)["error"] == "invalid_user_id"
        assert upstream.hits == 0

    async def test_longest_valid_id_passes(self, upstream: ScriptedUpstream) -> None:
        """A 64-character id is passed on to the upstream."""
        user_id = "a" * 64
        upstream.script(Reply.json({"message": "no such user"}, 404))

        async with (
            serve_gateway(settings_for(upstream.url)) as url,
            aiohttp.ClientSession() as client,
        ):
            status, _, _ = await fetch(client, f"{url}/api/dashboard/{user_id}")

        assert status == 404
        assert upstream.hits_for(f"/users/{user_id}") == 1


class TestRoutes:
    """Unknown routes and methods."""

    async def test_unknown_route_is_json_404(self, upstream: ScriptedUpstream) -> None:
        """A path no route matches gets 404 JSON."""
        async with (
            serve_gateway(settings_for(upstream.url)) as url,
            aiohttp.ClientSession() as client,
        ):
            status, text, content_type = await fetch(client, f"{url}/admin/../etc")

        assert status == 404
        assert content_type == "application/json"
        assert json.loads(text)["error"] == "not_found"

    async def test_wrong_method_is_json_405(self, upstream: ScriptedUpstream) -> None:
        """A POST to a GET route gets 405 JSON with an Allow header."""
        async with (
            serve_gateway(settings_for(upstream.url)) as url,
            aiohttp.ClientSession() as client,
            client.post(f"{url}/api/dashboard/1", data=b"x") as response,
        ):
            text = await response.text()

        assert response.status == 405
        assert response.content_type == "application/json"
        assert json.loads(text)["error"] == "method_not_allowed"
        assert "GET" in response.headers["Allow"]
        assert upstream.hits == 0


class TestLeaks:
    """Upstream bodies and tracebacks stay inside the gateway."""

    @pytest.mark.parametrize("status", [400, 401, 404, 500, 503])
    async def test_upstream_body_not_passed_on(
        self, status: int, upstream: ScriptedUpstream
    ) -> None:
        """An upstream error body's marker never reaches the gateway's response."""
        upstream.script(
            Reply.json({"message": f"failed: {MARKER}", "trace": MARKER}, status)
        )

        async with (
            serve_gateway(settings_for(upstream.url, retries=0)) as url,
            aiohttp.ClientSession() as client,
        ):
            answer, text, content_type = await fetch(client, f"{url}/api/dashboard/1")

        assert answer >= 400
        assert content_type == "application/json"
        assert MARKER not in text

    async def test_degraded_part_body_not_passed_on(
        self, upstream: ScriptedUpstream
    ) -> None:
        """A failed optional part is named in errors without its upstream body."""
        upstream.route("/users/1", Reply.json(USER_JSON))
        upstream.route(
            "/users/1/interviews", Reply.text(f"Traceback (most recent): {MARKER}", 500)
        )

        async with (
            serve_gateway(settings_for(upstream.url, retries=0)) as url,
            aiohttp.ClientSession() as client,
        ):
            answer, text, _ = await fetch(client, f"{url}/api/dashboard/1")

        assert answer == 200
        assert MARKER not in text
        assert "Traceback" not in text

    async def test_handler_bug_is_json_500(self) -> None:
        """An unexpected exception gives 500 JSON without a traceback or its text."""
        aggregator = AsyncMock(spec=DashboardAggregator)
        aggregator.get_user_dashboard.side_effect = RuntimeError(MARKER)
        container = Container()
        container.settings.override(
            providers.Object(settings_for("http://127.0.0.1:1"))
        )
        container.dashboard_aggregator.override(providers.Object(aggregator))

        async with (
            serve_app(create_app(container)) as url,
            aiohttp.ClientSession() as client,
        ):
            answer, text, content_type = await fetch(client, f"{url}/api/dashboard/1")

        assert answer == 500
        assert content_type == "application/json"
        assert json.loads(text)["error"] == "internal_error"
        assert "Traceback" not in text
        assert MARKER not in text
