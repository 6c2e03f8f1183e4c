"""Tests for the pytest plugin that the package registers as an entry point."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import aiohttp
import pytest

import app.testing.plugin
from app.testing import Reply, SandboxServices, ScriptedUpstream

# A test file of a project that installs this package and runs pytest-asyncio in
# strict mode, where only fixtures that pytest-asyncio registered run.
USER_TEST_FILE = """
import pytest


@pytest.mark.asyncio
async def test_upstream(scripted_upstream):
    assert scripted_upstream.url.startswith("http://127.0.0.1:")


@pytest.mark.asyncio
async def test_sandbox(sandbox_services):
    assert sandbox_services.user_url != sandbox_services.interview_url
"""


class TestRegistration:
    """pytest loads the plugin through the package's pytest11 entry point."""

    def test_entry_point(self) -> None:
        """The package declares app.testing.plugin under pytest11."""
        declared = {entry.name: entry.value for entry in entry_points(group="pytest11")}
        assert declared.get("service_proxies") == "app.testing.plugin"

    def test_loaded(self, pytestconfig: pytest.Config) -> None:
        """The running pytest has loaded the plugin module."""
        plugin = pytestconfig.pluginmanager.get_plugin("service_proxies")
        assert plugin is app.testing.plugin

    def test_fixtures_in_strict_mode(self, tmp_path: Path) -> None:
        """A project in pytest-asyncio's strict mode can use both fixtures."""
        (tmp_path / "test_kit.py").write_text(USER_TEST_FILE)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        command += ["-o", "asyncio_mode=strict", "test_kit.py"]
        result = subprocess.run(
            command, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout
        assert "2 passed" in result.stdout


class TestScriptedUpstream:
    """scripted_upstream gives each test a started ScriptedUpstream."""

    async def test_serves_script(self, scripted_upstream: ScriptedUpstream) -> None:
        """The fixture's upstream replies with its script."""
        scripted_upstream.script(Reply.json({"id": "1"}, status=201))
        async with (
            aiohttp.ClientSession() as session,
            session.get(scripted_upstream.url) as response,
        ):
            status = response.status
            body = await response.json()
        assert status == 201
        assert body == {"id": "1"}

    async def test_fresh_per_test(self, scripted_upstream: ScriptedUpstream) -> None:
        """Each test starts with no recorded requests."""
        assert scripted_upstream.hits == 0


class TestSandboxServices:
    """sandbox_services serves both sandbox services for one test."""

    async def test_serves_users(self, sandbox_services: SandboxServices) -> None:
        """The user URL serves the seeded users."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{sandbox_services.user_url}/users/1") as response,
        ):
            status = response.status
        assert status == 200

    async def test_serves_interviews(self, sandbox_services: SandboxServices) -> None:
        """The interview URL serves the seeded interviews."""
        url = f"{sandbox_services.interview_url}/interviews/iv-0001"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            status = response.status
        assert status == 200

    async def test_faults_start_empty(self, sandbox_services: SandboxServices) -> None:
        """The fixture's faults have nothing queued."""
        assert sandbox_services.faults.pending("get_user") == 0
