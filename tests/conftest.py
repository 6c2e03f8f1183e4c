"""Shared fixtures: metrics, client sessions, proxies, upstreams and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from app.metrics import ProxyMetrics
from app.proxies import BaseServiceProxy, UserServiceProxy
from app.resilience.redis_store import open_redis_client
from app.settings import CacheSettings
from app.testing import ScriptedUpstream
from tests.helpers import (
    Sandbox,
    require_tool,
    reset_trace_globals,
    run_sandbox_apps,
    service_settings,
)
from tests.redis_server import RedisServer

ProxyFactory = Callable[..., Any]


@pytest.fixture
def registry() -> CollectorRegistry:
    """Give each test a metrics registry of its own."""
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> ProxyMetrics:
    """Define the proxy metrics on the test's registry."""
    return ProxyMetrics(registry)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """Open a client session that is closed when the test ends."""
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def upstream(scripted_upstream: ScriptedUpstream) -> ScriptedUpstream:
    """Start a scripted upstream on a free loopback port, closed after the test.

    The ``scripted_upstream`` fixture comes from the app.testing.plugin, which the
    package registers with pytest as an entry point.
    """
    return scripted_upstream


@pytest.fixture
def make_proxy(session: aiohttp.ClientSession, metrics: ProxyMetrics) -> ProxyFactory:
    """Build proxies on the test's session and metrics, with shrunken retry waits."""

    def build(
        url: str,
        proxy_class: type[BaseServiceProxy] = UserServiceProxy,
        **overrides: Any,
    ) -> Any:
        return proxy_class(session, service_settings(url, **overrides), metrics)

    return build


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """Serve fresh sandbox services with seeded data on free loopback ports."""
    async with run_sandbox_apps() as running:
        yield running


@pytest.fixture
def span_exporter() -> Iterator[InMemorySpanExporter]:
    """Install an SDK tracer provider that keeps finished spans, for one test.

    It is installed as a user would, with trace.set_tracer_provider, before the
    test builds its proxies or gateway, and the API's default is put back after.
    """
    reset_trace_globals()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        provider.shutdown()
        reset_trace_globals()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """Run a redis-server of the test's own on a free loopback port."""
    require_tool("redis-server", "redis-server")
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """Open a client of the test's redis-server as the container would."""
    settings = CacheSettings(backend="redis", redis_url=redis_server.url)
    async with asynccontextmanager(open_redis_client)(settings) as client:
        assert client is not None
        yield client
