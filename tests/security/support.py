"""Helpers of the security tests: payloads, a gateway on loopback, log capture."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import aiohttp
import yarl
from dependency_injector import providers
from loguru import logger

from app.containers import Container
from app.gateway import create_app
from app.settings import Settings
from tests.helpers import serve_app, service_settings

__all__ = [
    "STATS_JSON",
    "USER_JSON",
    "capture_logs",
    "fetch",
    "serve_gateway",
    "settings_for",
]

USER_JSON: dict[str, Any] = {
    "id": "1",
    "email": "grace@example.com",
    "firstName": "Grace",
    "lastName": "Hopper",
    "role": "recruiter",
    "isActive": True,
    "createdAt": "2026-01-01T00:00:00Z",
}

STATS_JSON: dict[str, Any] = {
    "userId": "1",
    "interviewsCreated": 0,
    "candidatesInvited": 0,
    "quotaLimit": 5,
    "quotaUsed": 0,
    "lastActiveAt": None,
}


def settings_for(url: str, **overrides: Any) -> Settings:
    """Build settings that point both services at one loopback URL."""
    return Settings(
        user_service=service_settings(url, **overrides),
        interview_service=service_settings(url, **overrides),
    )


@asynccontextmanager
async def serve_gateway(settings: Settings) -> AsyncIterator[str]:
    """Serve the gateway on loopback with the given settings; yield its URL."""
    container = Container()
    container.settings.override(providers.Object(settings))
    async with serve_app(create_app(container)) as url:
        yield url


@contextmanager
def capture_logs() -> Iterator[list[str]]:
    """Collect every log record of every level as loguru's serialized JSON.

    The JSON contains the formatted message, every extra field and any exception.
    """
    lines: list[str] = []
    sink_id = logger.add(lines.append, level="TRACE", serialize=True)
    try:
        yield lines
    finally:
        logger.remove(sink_id)


async def fetch(
    session: aiohttp.ClientSession, url: str
) -> tuple[int, str, str | None]:
    """GET an already encoded URL; return the status, body and Content-Type."""
    async with session.get(yarl.URL(url, encoded=True)) as response:
        return response.status, await response.text(), response.content_type
