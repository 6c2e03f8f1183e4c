"""pytest plugin with fixtures for a scripted upstream and the sandbox services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar, cast

import pytest

from app.testing.sandbox import SandboxServices, serve_sandbox
from app.testing.upstream import ScriptedUpstream

FixtureT = TypeVar("FixtureT", bound=Callable[..., Any])


def _async_fixture(function: FixtureT) -> FixtureT:
    """Register ``function`` as a fixture that pytest-asyncio runs.

    pytest-asyncio's decorator works in its strict mode too, where a plain
    ``pytest.fixture`` on an async function is not run. pytest loads this plugin
    even where pytest-asyncio is missing, so the import must not fail then.
    """
    decorator: Callable[[Any], object]
    try:
        from pytest_asyncio import fixture
    except ImportError:  # pragma: no cover - pytest-asyncio is a test extra
        decorator = pytest.fixture
    else:
        decorator = fixture
    return cast(FixtureT, decorator(function))


@_async_fixture
async def scripted_upstream() -> AsyncIterator[ScriptedUpstream]:
    """Start a `ScriptedUpstream` on a free loopback port and close it afterwards."""
    async with ScriptedUpstream() as server:
        yield server


@_async_fixture
async def sandbox_services() -> AsyncIterator[SandboxServices]:
    """Serve fresh sandbox services with seeded data and an empty `SandboxFaults`."""
    async with serve_sandbox() as services:
        yield services
