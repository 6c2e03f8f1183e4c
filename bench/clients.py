"""The five HTTP clients compared: bare aiohttp, our proxy and three peers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import httpx
import tenacity
from aiohttp_retry import ExponentialRetry, RetryClient

from app.containers import resolve
from bench.production import production_container

__all__ = ["CLIENTS", "CLIENT_LABELS", "Call", "open_client"]

Call = Callable[[], Awaitable[object]]

# Stable names, used in result keys, in the order of the tables.
CLIENTS = ("aiohttp", "proxy", "httpx", "aiohttp_retry", "tenacity_aiohttp")
CLIENT_LABELS = {
    "aiohttp": "bare aiohttp ClientSession + resp.json()",
    "proxy": "UserServiceProxy.get_user (production config, cache off)",
    "httpx": "httpx.AsyncClient + resp.json()",
    "aiohttp_retry": "aiohttp-retry RetryClient (ExponentialRetry, 4 attempts)",
    "tenacity_aiohttp": "bare aiohttp in a tenacity AsyncRetrying per call",
}
# Retries of the peers that retry, as many as the proxy's default of 3.
_ATTEMPTS = 4
# Connection pool of the peers: the size of our shared session's pool.
_POOL_SIZE = 100
USER_PATH = "/users/1"


async def open_client(
    name: str, stack: AsyncExitStack, *, base_url: str, config: Path
) -> Call:
    """Open one client on ``stack`` and return a call that fetches user 1."""
    url = base_url + USER_PATH
    if name == "proxy":
        container = await stack.enter_async_context(production_container(config))
        users = await resolve(container.user_service)
        return lambda: users.get_user("1")
    if name == "httpx":
        limits = httpx.Limits(
            max_connections=_POOL_SIZE, max_keepalive_connections=_POOL_SIZE
        )
        client = httpx.AsyncClient(limits=limits, trust_env=False)
        await stack.enter_async_context(client)
        return _httpx_call(client, url)
    session = await stack.enter_async_context(_bare_session())
    if name == "aiohttp":
        return _aiohttp_call(session, url)
    if name == "aiohttp_retry":
        options = ExponentialRetry(attempts=_ATTEMPTS)
        retry_client = RetryClient(client_session=session, retry_options=options)
        return _aiohttp_retry_call(retry_client, url)
    if name == "tenacity_aiohttp":
        return _tenacity_call(session, url)
    message = f"unknown client {name!r}; expected one of {', '.join(CLIENTS)}"
    raise ValueError(message)


def _bare_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=_POOL_SIZE)
    return aiohttp.ClientSession(connector=connector, trust_env=False)


def _aiohttp_call(session: aiohttp.ClientSession, url: str) -> Call:
    async def call() -> object:
        async with session.get(url) as response:
            response.raise_for_status()
            return await response.json()

    return call


def _httpx_call(client: httpx.AsyncClient, url: str) -> Call:
    async def call() -> object:
        response = await client.get(url)
        response.raise_for_status()
        return response.json()

    return call


def _aiohttp_retry_call(client: RetryClient, url: str) -> Call:
    async def call() -> object:
        async with client.get(url) as response:
            response.raise_for_status()
            return await response.json()

    return call


def _tenacity_call(session: aiohttp.ClientSession, url: str) -> Call:
    async def call() -> object:
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(_ATTEMPTS),
            wait=tenacity.wait_exponential_jitter(initial=1, max=10),
            retry=tenacity.retry_if_exception_type((aiohttp.ClientError, TimeoutError)),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                async with session.get(url) as response:
                    response.raise_for_status()
                    return await response.json()
        message = "the retry loop ended without a result"
        raise AssertionError(message)

    return call
