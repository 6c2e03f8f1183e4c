"""Path parameters stay one percent-encoded segment of the service's own URL."""

from __future__ import annotations

import asyncio
from unittest.mock import AsyncMock, patch
from urllib.parse import quote, unquote

import aiohttp
import pytest
import yarl
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from app.metrics import ProxyMetrics
from app.proxies import UserServiceProxy
from app.proxies.engine import CallRequest
from app.proxies.wire import MAX_SEGMENT_LENGTH, path_segment
from app.testing import Reply, ScriptedUpstream
from tests.conftest import ProxyFactory
from tests.helpers import service_settings
from tests.security.support import STATS_JSON

BASE_URL = "http://127.0.0.1:8123"

NASTY_IDS = [
    "../admin",
    "..%2Fadmin",
    "a/b",
    "%2e%2e",
    "%2E%2E/x",
    "?x=1",
    "#frag",
    "\r\nHost: evil.example",
    "a\x00b",
    "\x00",
    "\\..\\admin",
    "...",
    ". .",
    "é",
    "用户",
    "🙂",
    "a;b=c",
    "x" * MAX_SEGMENT_LENGTH,
]

REJECTED_IDS = ["", ".", "..", "x" * (MAX_SEGMENT_LENGTH + 1), "a\ud800b"]


class _CapturedError(Exception):
    """Ends a call once the engine received its request."""


async def _stats_request(user_id: str) -> CallRequest:
    """Run get_user_stats up to the engine and return the request it received."""
    async with aiohttp.ClientSession() as session:
        proxy = UserServiceProxy(
            session, service_settings(BASE_URL), ProxyMetrics(CollectorRegistry())
        )
        call = AsyncMock(side_effect=_CapturedError)
        with patch.object(proxy.engine, "call", call), pytest.raises(_CapturedError):
            await proxy.get_user_stats(user_id)
    assert call.await_args is not None
    request: CallRequest = call.await_args.args[0]
    return request


def _assert_one_segment(url: yarl.URL, user_id: str) -> None:
    base = yarl.URL(BASE_URL)
    parts = url.raw_path.split("/")

    assert url.scheme == base.scheme
    assert url.host == base.host
    assert url.port == base.port
    assert url.raw_query_string == ""
    assert url.raw_fragment == ""
    assert len(parts) == 4
    assert parts[:2] == ["", "users"]
    assert parts[3] == "stats"
    assert parts[2] not in {"", ".", ".."}
    assert unquote(parts[2], errors="strict") == user_id


class TestPathSegment:
    """wire.path_segment on its own."""

    @pytest.mark.parametrize("user_id", NASTY_IDS)
    def test_nasty_id_is_one_segment(self, user_id: str) -> None:
        """No character of a nasty id survives that could end or leave the segment."""
        segment = path_segment(user_id)

        assert segment.isascii()
        assert not set(segment) & set("/?#\\\r\n\x00 ")
        assert unquote(segment, errors="strict") == user_id

    def test_percent_stays_literal(self) -> None:
        """%2e%2e is encoded again, so the server decodes it to text, not a dot."""
        assert path_segment("%2e%2e") == "%252e%252e"

    @pytest.mark.parametrize("user_id", REJECTED_IDS)
    def test_unsafe_id_raises(self, user_id: str) -> None:
        """Empty, dot, too long and unencodable ids raise ValueError."""
        with pytest.raises(ValueError, match="path parameter"):
            path_segment(user_id)


class TestProxyUrl:
    """The URL a typed method hands to the engine."""

    @settings(max_examples=300, deadline=None)
    @given(
        user_id=st.one_of(
            st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
            st.text(st.characters(exclude_categories=["Cs"]), min_size=500),
            st.sampled_from(NASTY_IDS + REJECTED_IDS[:4]),
        )
    )
    def test_any_id_keeps_url_shape(self, user_id: str) -> None:
        """Any id raises ValueError or becomes one segment of the service's URL."""
        try:
            request = asyncio.run(_stats_request(user_id))
        except ValueError:
            assert user_id in {"", ".", ".."} or len(user_id) > MAX_SEGMENT_LENGTH
            return

        _assert_one_segment(request.url, user_id)

    @pytest.mark.parametrize("user_id", REJECTED_IDS)
    async def test_rejected_id_sends_nothing(
        self, user_id: str, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A rejected id raises before any request reaches the upstream."""
        proxy = make_proxy(upstream.url)

        with pytest.raises(ValueError, match="path parameter"):
            await proxy.get_user_stats(user_id)

        assert upstream.hits == 0


class TestLoopback:
    """What a real upstream receives over loopback HTTP."""

    @pytest.mark.parametrize("user_id", NASTY_IDS)
    async def test_upstream_sees_literal_id(
        self, user_id: str, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """The request line contains the encoded id and the Host is the service's."""
        upstream.script(Reply.json(STATS_JSON))
        proxy = make_proxy(upstream.url)

        await proxy.get_user_stats(user_id)

        received = upstream.requests[0]
        parts = received.path.split("/")
        assert upstream.hits == 1
        assert received.path == f"/users/{quote(user_id, safe='')}/stats"
        assert len(parts) == 4
        assert unquote(parts[2], errors="strict") == user_id
        assert received.headers["host"] == f"127.0.0.1:{upstream.port}"
