"""Helpers shared by the tests: fast settings and metric reads."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from opentelemetry import trace
from opentelemetry.util._once import Once
from prometheus_client import CollectorRegistry

from app.metrics import MULTIPROC_DIR_VARIABLE
from app.sandbox import create_interview_service_app, create_user_service_app
from app.settings import ServiceSettings, Settings

__all__ = [
    "FAST_RETRY",
    "USER_JSON",
    "Sandbox",
    "free_port",
    "reset_trace_globals",
    "run_sandbox_apps",
    "sample",
    "serve_app",
    "service_settings",
    "write_counter",
]

# Retry waits of 10 ms, 20 ms, 40 ms... instead of 1 s, 2 s, 4 s.
FAST_RETRY: dict[str, Any] = {
    "timeout": 2.0,
    "retries": 3,
    "backoff_initial": 0.01,
    "backoff_multiplier": 2.0,
    "backoff_max": 0.05,
    "jitter": "none",
    # Tests often point both services at one upstream, which then shares one
    # per-host connection limit of 50 between both bulkheads.
    "bulkhead_max_concurrent": 25,
}

# The body of user 1 as the user-service sends it.
USER_JSON: dict[str, Any] = {
    "id": "1",
    "email": "ada@example.com",
    "firstName": "Ada",
    "lastName": "Lovelace",
    "role": "admin",
    "isActive": True,
    "createdAt": "2026-01-01T00:00:00Z",
}


def service_settings(url: str, **overrides: Any) -> ServiceSettings:
    """Build service settings with shrunken retry waits."""
    return ServiceSettings(url=url, **{**FAST_RETRY, **overrides})


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """Read one sample, 0.0 when the series does not exist."""
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Serve an aiohttp app on a free loopback port and yield its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@dataclass(frozen=True)
class Sandbox:
    """Base URLs of a running sandbox user-service and interview-service."""

    user_url: str
    interview_url: str

    def settings(self, **overrides: Any) -> Settings:
        """Build settings that point both proxies at this sandbox."""
        return Settings(
            user_service=service_settings(self.user_url, **overrides),
            interview_service=service_settings(self.interview_url, **overrides),
        )


@asynccontextmanager
async def run_sandbox_apps(latency_ms: float = 0) -> AsyncIterator[Sandbox]:
    """Serve fresh sandbox services on free loopback ports."""
    async with (
        serve_app(create_user_service_app(latency_ms=latency_ms)) as user_url,
        serve_app(create_interview_service_app(latency_ms=latency_ms)) as interview_url,
    ):
        yield Sandbox(user_url, interview_url)


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def write_counter(directory: Path, value: int) -> None:
    """Count ``value`` user-service GETs in a metrics file of a process of its own.

    The process runs in prometheus_client's multiprocess mode with ``directory``
    and exits, as a gateway worker that died would.
    """
    script = (
        "from prometheus_client import Counter\n"
        "calls = Counter('service_calls', 'calls', ['service', 'method', 'status'])\n"
        f"calls.labels('user-service', 'GET', 'success').inc({value})\n"
    )
    subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, MULTIPROC_DIR_VARIABLE: str(directory)},
        check=True,
        timeout=30,
    )


def reset_trace_globals() -> None:
    """Put OpenTelemetry's global tracer provider back to the API's default.

    The API lets a process set its global provider once. This does what
    ``opentelemetry.test.globals_test.reset_trace_globals`` of opentelemetry-python's
    test utilities does, without that package and its dependencies.
    """
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    trace._PROXY_TRACER_PROVIDER = trace.ProxyTracerProvider()


# Set by .ci/run, where a test that needs a missing tool must fail, not skip.
REQUIRE_TOOLS_VARIABLE = "SERVICE_PROXIES_REQUIRE_TOOLS"


def require_tool(command: str, package: str) -> str:
    """Return the path of ``command``, or skip the test without it.

    Under .ci/run, which installs every tool, a missing one fails the test instead.
    """
    path = shutil.which(command)
    if path is not None:
        return path
    message = f"{command} is not installed; .ci/run installs Debian's {package} package"
    if os.environ.get(REQUIRE_TOOLS_VARIABLE):
        pytest.fail(message)
    pytest.skip(message)
