"""The shared aiohttp client session, owned by the container."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Literal

import aiohttp
from loguru import logger

from app.settings import HttpClientSettings, Settings

__all__ = ["build_ssl_context", "open_http_session"]

USER_AGENT = "service-proxies/0.1"


def build_ssl_context(client: HttpClientSettings) -> ssl.SSLContext | Literal[False]:
    """Build the TLS context that verifies upstream certificates.

    The system's certificate authorities are trusted, or only those in
    ``ca_bundle`` when it is set. With ``verify_tls`` off, the result is False,
    which makes aiohttp accept any certificate.
    """
    if not client.verify_tls:
        return False
    cafile = None if client.ca_bundle is None else str(client.ca_bundle)
    try:
        return ssl.create_default_context(cafile=cafile)
    except ssl.SSLError as exc:
        message = (
            f"invalid settings: http_client.ca_bundle (HTTP_CLIENT_CA_BUNDLE) "
            f"{cafile} holds no usable PEM certificate: {exc}"
        )
        raise ValueError(message) from None


async def open_http_session(settings: Settings) -> AsyncIterator[aiohttp.ClientSession]:
    """Open the client session inside the running loop and close it at shutdown."""
    client = settings.http_client
    if not client.verify_tls:
        logger.warning(
            "TLS certificate verification is off (http_client.verify_tls is "
            "false); use this only for local testing"
        )
    connector = aiohttp.TCPConnector(
        limit=client.connection_limit,
        limit_per_host=client.connection_limit_per_host,
        keepalive_timeout=client.keepalive_timeout,
        ssl=build_ssl_context(client),
    )
    session = aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": USER_AGENT},
        # Calls of every user share the session, so a cookie that one response
        # sets must not be sent on another user's call.
        cookie_jar=aiohttp.DummyCookieJar(),
        # Proxy variables of the environment must not redirect service calls.
        trust_env=False,
    )
    logger.debug("HTTP client session opened")
    try:
        yield session
    finally:
        await session.close()
        logger.debug("HTTP client session closed")
