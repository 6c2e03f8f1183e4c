"""GET /status and /status.json: figures, headers and escaping, over real HTTP."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib import resources

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request
from prometheus_client import CollectorRegistry

from app.containers import Container
from app.gateway import create_app
from app.gateway.health import UpstreamCheck
from app.gateway.status import CONTENT_SECURITY_POLICY, build_status, status_json
from app.metrics import ProxyMetrics
from app.proxies import EndpointState, UserServiceProxy
from app.settings import Settings
from app.testing import SandboxServices, closed_port_url
from tests.gateway.test_app import container_for, gateway, get_json
from tests.helpers import Sandbox, service_settings

ASSETS = [
    ("/status", "text/html"),
    ("/status.js", "text/javascript"),
    ("/status.css", "text/css"),
]


class _TagCollector(HTMLParser):
    """Collect every start tag with its attributes, and script bodies."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text.append(data)


class _CredentialedProxy(UserServiceProxy):
    """A proxy that reports an endpoint URL with credentials and a query."""

    def endpoint_states(self) -> list[EndpointState]:
        url = "http://admin:hunter2@127.0.0.1:9/base?token=abc#frag"
        return [EndpointState(url=url, state="active")]


class TestStatusJson:
    """The figures of /status.json."""

    async def test_figures_after_dashboards(
        self, sandbox_services: SandboxServices
    ) -> None:
        """Both services show the dashboard calls, and a failed call an error."""
        sandbox_services.faults.fail("get_user_stats", 404)
        settings = Settings(
            user_service=service_settings(sandbox_services.user_url),
            interview_service=service_settings(sandbox_services.interview_url),
        )
        async with gateway(container_for(settings)) as client:
            for user_id in ("1", "2", "3", "4"):
                await get_json(client, f"/api/dashboard/{user_id}")
            async with client.get("/status.json") as response:
                body = await response.json()
                status = response.status

        assert status == 200
        services = {service["name"]: service for service in body["services"]}
        assert list(services) == ["user-service", "interview-service"]
        users = services["user-service"]
        interviews = services["interview-service"]
        assert users["required"] is True
        assert interviews["required"] is False
        # Each dashboard reads the user and the stats from user-service.
        assert users["calls"] == 8
        assert users["errors"] == 1
        assert users["errorRatio"] == 0.125
        assert users["callsPerSecond"] > 0
        assert users["p99Ms"] > 0
        assert users["inFlight"] == 0
        assert users["circuit"] == "closed"
        assert users["windowSeconds"] >= 1
        assert users["endpoints"] == [
            {"url": sandbox_services.user_url, "state": "active"}
        ]
        assert interviews["calls"] == 4
        assert interviews["errors"] == 0
        assert interviews["errorRatio"] == 0.0
        assert interviews["endpoints"] == [
            {"url": sandbox_services.interview_url, "state": "active"}
        ]

    async def test_no_calls_gives_nulls(self, sandbox: Sandbox) -> None:
        """Before any call, rates are 0 and ratios and p99 are null."""
        async with gateway(container_for(sandbox.settings())) as client:
            status, body = await get_json(client, "/status.json")

        assert status == 200
        for service in body["services"]:
            assert service["calls"] == 0
            assert service["callsPerSecond"] == 0
            assert service["errorRatio"] is None
            assert service["p99Ms"] is None

    async def test_open_circuit_shown(self, sandbox: Sandbox) -> None:
        """An unreachable optional service shows errors and an open circuit."""
        settings = Settings(
            user_service=service_settings(sandbox.user_url),
            interview_service=service_settings(
                closed_port_url(), retries=0, breaker_minimum_calls=2
            ),
        )
        async with gateway(container_for(settings)) as client:
            for _ in range(3):
                await get_json(client, "/api/dashboard/1")
            status, body = await get_json(client, "/status.json")

        assert status == 200
        interviews = body["services"][1]
        assert interviews["name"] == "interview-service"
        assert interviews["circuit"] == "open"
        assert interviews["errors"] == 3
        assert interviews["errorRatio"] == 1.0

    async def test_json_headers(self, sandbox: Sandbox) -> None:
        """The JSON is never cached and carries the page's security headers."""
        async with (
            gateway(container_for(sandbox.settings())) as client,
            client.get("/status.json") as response,
        ):
            headers = response.headers

        assert headers["Content-Type"].startswith("application/json")
        assert headers["Cache-Control"] == "no-store"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY

    async def test_not_started_gives_503_json(self) -> None:
        """Before start-up the JSON is a 503 error like the gateway's others."""
        app = create_app(Container())
        request = make_mocked_request("GET", "/status.json", app=app)

        response = await status_json(request)

        assert response.status == 503
        assert response.text is not None
        assert '"error": "not_ready"' in response.text
        assert response.headers["X-Content-Type-Options"] == "nosniff"

    async def test_post_gives_405_json(self) -> None:
        """The status routes reject other methods with the usual JSON 405."""
        async with (
            gateway(Container()) as client,
            client.post("/status.json") as response,
        ):
            body = await response.json()
            status = response.status
            allow = response.headers.get("Allow", "")

        assert status == 405
        assert body["error"] == "method_not_allowed"
        assert "GET" in allow

    async def test_credentials_never_shown(self) -> None:
        """User, password, query and fragment are dropped from endpoint URLs."""
        async with aiohttp.ClientSession() as session:
            proxy = _CredentialedProxy(
                session,
                service_settings("http://127.0.0.1:9"),
                ProxyMetrics(CollectorRegistry()),
            )
            body = build_status([UpstreamCheck(proxy, required=True)])

        endpoint = body["services"][0]["endpoints"][0]
        assert endpoint["url"] == "http://127.0.0.1:9/base"
        assert "hunter2" not in str(body)
        assert "admin" not in str(body)
        assert "token" not in str(body)


class TestStatusPage:
    """The HTML page, its script and its style sheet."""

    @pytest.mark.parametrize(("path", "content_type"), ASSETS)
    async def test_asset_headers(self, path: str, content_type: str) -> None:
        """Each asset has its type, the CSP and nosniff."""
        async with gateway(Container()) as client, client.get(path) as response:
            status = response.status
            headers = response.headers

        assert status == 200
        assert headers["Content-Type"].startswith(content_type)
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-cache"

    def test_policy_forbids_inline_code(self) -> None:
        """Scripts and styles come only from the gateway, never inline."""
        directives = dict(
            part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";")
        )

        assert directives["default-src"] == "'none'"
        assert directives["script-src"] == "'self'"
        assert directives["style-src"] == "'self'"
        assert "unsafe" not in CONTENT_SECURITY_POLICY

    async def test_page_has_no_inline_code(self) -> None:
        """The page has no inline script, handler attribute or style attribute."""
        async with gateway(Container()) as client, client.get("/status") as response:
            html = await response.text()
        collector = _TagCollector()
        collector.feed(html)

        scripts = [attrs for tag, attrs in collector.tags if tag == "script"]
        assert scripts == [{"src": "status.js", "defer": None}]
        assert "".join(collector.script_text).strip() == ""
        for tag, attrs in collector.tags:
            assert "style" not in attrs, tag
            assert not [name for name in attrs if name.startswith("on")], tag

    def test_script_writes_text_only(self) -> None:
        """The script never parses data as HTML."""
        static = resources.files("app.gateway") / "static"
        script = (static / "status.js").read_text()

        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
            assert sink not in script
        assert re.search(r"\beval\(", script) is None
        assert "textContent" in script
