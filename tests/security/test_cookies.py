"""The shared session keeps no cookies, so no caller gets another's."""

from __future__ import annotations

from contextlib import asynccontextmanager

import aiohttp
from prometheus_client import CollectorRegistry

from app.http import open_http_session
from app.metrics import ProxyMetrics
from app.proxies import UserServiceProxy
from app.settings import Settings
from app.testing import Reply, ScriptedUpstream
from tests.helpers import service_settings


async def test_set_cookie_is_not_sent_back(upstream: ScriptedUpstream) -> None:
    """A cookie that an upstream sets never reaches a later call."""
    upstream.script(
        Reply.json({"ok": True}, headers={"Set-Cookie": "session=abc; Path=/"}),
        Reply.json({"ok": True}),
    )
    service = service_settings(upstream.url, retries=0)
    settings = Settings(user_service=service, interview_service=service)
    async with asynccontextmanager(open_http_session)(settings) as session:
        proxy = UserServiceProxy(session, service, ProxyMetrics(CollectorRegistry()))
        await proxy.get("/first")
        await proxy.get("/second")
        # aiohttp's default jar ignores cookies of IP-address hosts, so on
        # loopback only the jar's type shows that named hosts are covered too.
        jar = session.cookie_jar

    assert "cookie" not in upstream.requests[1].headers
    assert isinstance(jar, aiohttp.DummyCookieJar)
