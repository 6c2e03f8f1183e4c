"""Fixtures that serve fresh sandbox apps on loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from app.sandbox import create_interview_service_app, create_user_service_app
from tests.sandbox.support import serve


@pytest.fixture
async def users() -> AsyncIterator[aiohttp.ClientSession]:
    """Serve a fresh user-service and yield a session for it."""
    async with serve(create_user_service_app()) as session:
        yield session


@pytest.fixture
async def interviews() -> AsyncIterator[aiohttp.ClientSession]:
    """Serve a fresh interview-service and yield a session for it."""
    async with serve(create_interview_service_app()) as session:
        yield session
