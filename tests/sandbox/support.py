"""Helpers that serve a sandbox app on loopback and send JSON requests to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[aiohttp.ClientSession]:
    """Serve ``app`` on 127.0.0.1 and yield a session bound to its base URL."""
    async with (
        TestServer(app, host="127.0.0.1") as server,
        aiohttp.ClientSession(base_url=server.make_url("")) as session,
    ):
        yield session


async def call(
    session: aiohttp.ClientSession, method: str, path: str, **kwargs: Any
) -> tuple[int, Any]:
    """Send one request and return its status and decoded JSON body."""
    async with session.request(method, path, **kwargs) as response:
        if response.status == 204:
            return response.status, None
        return response.status, await response.json()
