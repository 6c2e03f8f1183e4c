"""The status page as headless Chromium renders it, after its script ran.

Each test serves the sandbox and the gateway on free loopback ports, makes
dashboard calls, and runs Debian's ``chromium`` with DNS mapped to nothing
but 127.0.0.1. One test saves a screenshot to ``artifacts/status-page.png``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest
from dependency_injector import providers

from app.containers import Container
from app.gateway import create_app
from app.proxies import InterviewServiceProxy
from app.settings import Settings
from app.testing import SandboxServices
from tests.helpers import require_tool, serve_app, service_settings

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "artifacts" / "status-page.png"
# Bound on one Chromium run; a run takes 1 to 5 s on a loaded 2-core machine.
CHROMIUM_SECONDS = 90.0
# Virtual milliseconds the page may run: its first fetch and a refresh or two.
VIRTUAL_TIME_MS = 5000
SERVICES = ("user-service", "interview-service")
HOSTILE_NAME = "<img src=x onerror=\"document.title='injected'\">"


class _StatusDom(HTMLParser):
    """Collect the text of each ``data-field`` element per ``data-service``."""

    def __init__(self) -> None:
        super().__init__()
        self.services: dict[str, dict[str, str]] = {}
        self.tags: list[str] = []
        self.updated = ""
        self.title = ""
        self._service: str | None = None
        self._fields: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        service = values.get("data-service")
        if service is not None:
            self._service = service
            self.services[service] = {}
        name = values.get("data-field")
        if name is not None:
            self._fields.append((tag, name))
        elif values.get("id") == "updated":
            self._fields.append((tag, "#updated"))
        elif tag == "title":
            self._fields.append((tag, "#title"))

    def handle_endtag(self, tag: str) -> None:
        if self._fields and self._fields[-1][0] == tag:
            self._fields.pop()

    def handle_data(self, data: str) -> None:
        if not self._fields:
            return
        name = self._fields[-1][1]
        if name == "#updated":
            self.updated += data
        elif name == "#title":
            self.title += data
        elif self._service is not None:
            fields = self.services[self._service]
            fields[name] = fields.get(name, "") + data


def chromium_command(url: str, profile: Path, *action: str) -> list[str]:
    """Build a headless Chromium command that cannot reach beyond loopback."""
    return [
        require_tool("chromium", "chromium"),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-sync",
        "--no-pings",
        "--disable-domain-reliability",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-extensions",
        "--disable-breakpad",
        "--mute-audio",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={VIRTUAL_TIME_MS}",
        *action,
        url,
    ]


async def run_chromium(url: str, tmp_path: Path, *action: str) -> str:
    """Run Chromium on ``url`` and return its standard output.

    It runs in a session of its own, so that its helper processes go with it:
    the whole process group is killed at the end, and at once when the run
    passes CHROMIUM_SECONDS.
    """
    home = tmp_path / "chromium-home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
    }
    command = chromium_command(url, tmp_path / "chromium-profile", *action)
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), CHROMIUM_SECONDS)
    except TimeoutError:
        pytest.fail(f"chromium did not finish within {CHROMIUM_SECONDS} s")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
    assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
    return stdout.decode()


def parse_dom(html: str) -> _StatusDom:
    """Parse a DOM dump into its services' fields."""
    dom = _StatusDom()
    dom.feed(html)
    return dom


@contextlib.asynccontextmanager
async def busy_gateway(
    sandbox: SandboxServices, container: Container | None = None
) -> AsyncIterator[str]:
    """Serve the gateway on the sandbox, make dashboard calls, yield its URL.

    The first dashboard's stats call gets a 404, so that the page has an error
    ratio above 0 to show: 1 failed call of user-service's 12.
    """
    settings = Settings(
        user_service=service_settings(sandbox.user_url),
        interview_service=service_settings(sandbox.interview_url),
    )
    if container is None:
        container = Container()
    container.settings.override(providers.Object(settings))
    sandbox.faults.fail("get_user_stats", 404)
    async with serve_app(create_app(container)) as url:
        async with aiohttp.ClientSession(base_url=url) as client:
            for user_id in ("1", "2", "3", "4", "5", "6"):
                async with client.get(f"/api/dashboard/{user_id}") as response:
                    await response.read()
        yield url


class TestStatusPageInChromium:
    """The page shows every service with its figures once its script ran."""

    async def test_every_service_shown(
        self, sandbox_services: SandboxServices, tmp_path: Path
    ) -> None:
        """Both services appear with rate, error ratio, p99, circuit and endpoint."""
        async with busy_gateway(sandbox_services) as url:
            html = await run_chromium(f"{url}/status", tmp_path, "--dump-dom")
        dom = parse_dom(html)

        assert sorted(dom.services) == sorted(SERVICES)
        assert dom.updated.startswith("Updated at")
        endpoints = {
            "user-service": sandbox_services.user_url,
            "interview-service": sandbox_services.interview_url,
        }
        for name in SERVICES:
            fields = dom.services[name]
            assert fields["name"] == name
            assert float(fields["callsPerSecond"]) > 0, fields
            assert fields["errorRatio"].endswith(" %"), fields
            assert fields["p99Ms"].endswith(" ms"), fields
            assert float(fields["p99Ms"].removesuffix(" ms")) > 0, fields
            assert fields["inFlight"] == "0", fields
            assert fields["circuit"] == "circuit closed", fields
            assert fields["endpoints"] == f"{endpoints[name]}active", fields
        users = dom.services["user-service"]
        interviews = dom.services["interview-service"]
        assert users["errorRatio"] == "8.3 %"
        assert users["window"].startswith("12 calls, 1 failed, in the last")
        assert interviews["errorRatio"] == "0.0 %"
        assert interviews["window"].startswith("6 calls, 0 failed, in the last")

    async def test_screenshot_saved(
        self, sandbox_services: SandboxServices, tmp_path: Path
    ) -> None:
        """A PNG of the rendered page is written to artifacts/status-page.png."""
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.unlink(missing_ok=True)
        action = (
            f"--screenshot={SCREENSHOT}",
            "--window-size=1280,420",
            "--hide-scrollbars",
        )
        async with busy_gateway(sandbox_services) as url:
            await run_chromium(f"{url}/status", tmp_path, *action)

        png = SCREENSHOT.read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(png) > 10_000

    async def test_hostile_name_stays_text(
        self, sandbox_services: SandboxServices, tmp_path: Path
    ) -> None:
        """A service name made of markup is shown as text, never parsed."""
        container = Container()
        container.interview_service.override(
            providers.Singleton(
                InterviewServiceProxy,
                session=container.http_session,
                settings=container.settings.provided.interview_service,
                metrics=container.metrics,
                service_name=HOSTILE_NAME,
            )
        )
        async with busy_gateway(sandbox_services, container) as url:
            html = await run_chromium(f"{url}/status", tmp_path, "--dump-dom")
        dom = parse_dom(html)

        assert HOSTILE_NAME in dom.services
        assert dom.services[HOSTILE_NAME]["name"] == HOSTILE_NAME
        assert "img" not in dom.tags
        assert dom.title == "Gateway status"
