"""The shared aiohttp client session, owned by the container."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from loguru import logger

from app.settings import Settings

__all__ = ["open_http_session"]

USER_AGENT = "service-proxies/0.1"


async def open_http_session(settings: Settings) -> AsyncIterator[aiohttp.ClientSession]:
    """Open the client session inside the running loop and close it at shutdown."""
    client = settings.http_client
    connector = aiohttp.TCPConnector(
        limit=client.connection_limit,
        limit_per_host=client.connection_limit_per_host,
        keepalive_timeout=client.keepalive_timeout,
    )
    session = aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": USER_AGENT},
        # Proxy variables of the environment must not redirect service calls.
        trust_env=False,
    )
    logger.debug("HTTP client session opened")
    try:
        yield session
    finally:
        await session.close()
        logger.debug("HTTP client session closed")
