"""X-Request-Id at the gateway: taken or made, sent downstream, echoed back."""

from __future__ import annotations

import re

import pytest
from loguru import logger

from app.settings import Settings
from app.testing import Reply, ScriptedUpstream
from tests.gateway.test_degraded import gateway
from tests.helpers import Sandbox, service_settings

USER = {
    "id": "1",
    "email": "a@example.com",
    "firstName": "A",
    "lastName": "B",
    "role": "admin",
    "isActive": True,
    "createdAt": "2026-01-01T00:00:00Z",
}


def settings_for(upstream: ScriptedUpstream, sandbox: Sandbox) -> Settings:
    """Point user-service at the scripted upstream, interview-service at the sandbox.

    Both log their successful calls, so that every call writes a line.
    """
    return Settings(
        user_service=service_settings(upstream.url, cache_ttl={}, log_successes=True),
        interview_service=service_settings(sandbox.interview_url, log_successes=True),
    )


class TestRequestId:
    """The id reaches the upstream and the response."""

    async def test_caller_id_reaches_upstream(
        self, upstream: ScriptedUpstream, sandbox: Sandbox
    ) -> None:
        """A caller's X-Request-Id goes to every upstream call and comes back."""
        upstream.script(Reply.json(USER))
        async with (
            gateway(settings_for(upstream, sandbox)) as client,
            client.get(
                "/api/dashboard/1", headers={"X-Request-Id": "trace-abc-123"}
            ) as response,
        ):
            echoed = response.headers["X-Request-Id"]

        sent = {request.headers.get("x-request-id") for request in upstream.requests}
        assert echoed == "trace-abc-123"
        assert sent == {"trace-abc-123"}

    async def test_missing_id_is_generated(
        self, upstream: ScriptedUpstream, sandbox: Sandbox
    ) -> None:
        """Without a caller id the gateway makes one and sends it on."""
        upstream.script(Reply.json(USER))
        async with (
            gateway(settings_for(upstream, sandbox)) as client,
            client.get("/api/dashboard/1") as response,
        ):
            echoed = response.headers["X-Request-Id"]

        assert re.fullmatch(r"[0-9a-f]{32}", echoed)
        assert upstream.requests[0].headers["x-request-id"] == echoed

    @pytest.mark.parametrize("bad", ["a" * 200, "id with spaces", "x\\ny"])
    async def test_unusable_id_is_replaced(
        self, upstream: ScriptedUpstream, sandbox: Sandbox, bad: str
    ) -> None:
        """Overlong ids and ids with odd characters are replaced, not passed on."""
        upstream.script(Reply.json(USER))
        async with (
            gateway(settings_for(upstream, sandbox)) as client,
            client.get("/api/dashboard/1", headers={"X-Request-Id": bad}) as response,
        ):
            echoed = response.headers["X-Request-Id"]

        assert echoed != bad
        assert upstream.requests[0].headers["x-request-id"] == echoed

    async def test_log_lines_carry_the_id(
        self, upstream: ScriptedUpstream, sandbox: Sandbox
    ) -> None:
        """The proxies' log lines of a request carry its request id."""
        upstream.script(Reply.json(USER))
        seen: list[dict[str, object]] = []
        sink_id = logger.add(
            lambda message: seen.append(dict(message.record["extra"])), level="DEBUG"
        )
        try:
            async with (
                gateway(settings_for(upstream, sandbox)) as client,
                client.get("/api/dashboard/1", headers={"X-Request-Id": "rid-9"}),
            ):
                pass
        finally:
            logger.remove(sink_id)

        proxy_lines = [extra for extra in seen if "service" in extra]
        assert proxy_lines
        assert {extra.get("request_id") for extra in proxy_lines} == {"rid-9"}
