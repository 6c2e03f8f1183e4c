"""Hostile or broken upstream responses and bad call arguments."""

from __future__ import annotations

import asyncio
import gzip
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from app.proxies import (
    ServiceDecodeError,
    ServiceProtocolError,
    ServiceRedirectError,
    ServiceServerError,
)
from app.resilience.retry_after import parse_retry_after
from app.testing import Reply, ScriptedUpstream
from tests.conftest import ProxyFactory


@asynccontextmanager
async def raw_server(payload: bytes) -> AsyncIterator[str]:
    """Serve one fixed byte string to every connection; yield the base URL."""

    async def answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(payload)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


class TestBodies:
    """Bodies built to break the decoder or exhaust memory."""

    async def test_gzip_bomb_is_cut_at_the_limit(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A small gzip body that inflates past max_body_bytes is rejected."""
        bomb = gzip.compress(b"[" + b"0," * 2_000_000 + b"0]")
        upstream.script(
            Reply(
                body=bomb,
                content_type="application/json",
                headers={"Content-Encoding": "gzip"},
            )
        )
        proxy = make_proxy(upstream.url, max_body_bytes=100_000)

        with pytest.raises(ServiceDecodeError) as caught:
            await proxy.get("/x")

        assert "exceeds the limit" in caught.value.details

    async def test_deep_nesting_is_a_decode_error(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """JSON nested 100,000 deep raises ServiceDecodeError, not RecursionError."""
        upstream.script(Reply(body=b"[" * 100_000 + b"]" * 100_000))
        proxy = make_proxy(upstream.url)

        with pytest.raises(ServiceDecodeError):
            await proxy.get("/x")

    async def test_deep_nesting_in_error_body(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A deeply nested 500 body becomes a text excerpt in details."""
        upstream.script(
            Reply(status=500, body=b"[" * 60_000, content_type="application/json")
        )
        proxy = make_proxy(upstream.url, retries=0)

        with pytest.raises(ServiceServerError) as caught:
            await proxy.get_user("1")

        assert isinstance(caught.value.details, str)

    async def test_nan_body_is_a_decode_error(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """NaN is not JSON, although Python's json module accepts it."""
        upstream.script(Reply(body=b"NaN", content_type="application/json"))
        proxy = make_proxy(upstream.url)

        with pytest.raises(ServiceDecodeError):
            await proxy.get("/x")

    async def test_nan_request_body_is_rejected(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A request body holding NaN raises ValueError before sending."""
        proxy = make_proxy(upstream.url)

        with pytest.raises(ValueError, match="cannot be sent as JSON"):
            await proxy.post("/x", {"score": math.nan})

        assert upstream.hits == 0


class TestProtocol:
    """Responses that are not valid HTTP."""

    async def test_bad_status_line_is_a_protocol_error(
        self, make_proxy: ProxyFactory
    ) -> None:
        """Garbage instead of a status line raises ServiceProtocolError."""
        async with raw_server(b"SPDY/9 what\r\n\r\n") as url:
            proxy = make_proxy(url, retries=0)
            with pytest.raises(ServiceProtocolError):
                await proxy.get("/x")

    async def test_final_1xx_is_a_protocol_error(
        self, make_proxy: ProxyFactory
    ) -> None:
        """A final 101 is not a success."""
        payload = b"HTTP/1.1 101 Switching Protocols\r\nConnection: close\r\n\r\n"
        async with raw_server(payload) as url:
            proxy = make_proxy(url, retries=0)
            with pytest.raises(ServiceProtocolError):
                await proxy.get("/x")


class TestRetryAfterParsing:
    """Retry-After values that look like numbers but are not."""

    @pytest.mark.parametrize("value", ["\u00b2", "1.5", "-3", "", "soon"])
    def test_unusable_values_are_ignored(self, value: str) -> None:
        """Superscripts, fractions, negatives and words give None."""
        assert parse_retry_after(value) is None

    def test_delta_seconds(self) -> None:
        """A whole number of seconds is read as such."""
        assert parse_retry_after(" 12 ") == 12.0


class TestArguments:
    """Call arguments that would break the wire or the timers."""

    @pytest.mark.parametrize("path", ["/a b", "/caf\u00e9", "/x\r\nHost: evil", "/%zz"])
    async def test_unsafe_path_is_rejected(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory, path: str
    ) -> None:
        """Spaces, raw non-ASCII, CR LF and bad escapes raise ValueError."""
        proxy = make_proxy(upstream.url)

        with pytest.raises(ValueError, match="path must start"):
            await proxy.get(path)

        assert upstream.hits == 0

    @pytest.mark.parametrize("value", [math.inf, math.nan, 0.0, -1.0])
    async def test_bad_timeout_is_rejected(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory, value: float
    ) -> None:
        """Infinite, NaN, zero and negative timeouts raise ValueError."""
        proxy = make_proxy(upstream.url)

        with pytest.raises(ValueError, match="finite number"):
            await proxy.get("/x", timeout=value)

    async def test_percent_encoded_path_is_sent(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A path encoded by the caller goes out unchanged."""
        proxy = make_proxy(upstream.url)

        await proxy.get("/users/caf%C3%A9")

        assert upstream.requests[0].path == "/users/caf%C3%A9"


class TestMoreArguments:
    """Further arguments rejected before anything is sent."""

    @pytest.mark.parametrize("path", ["/../admin", "/a/./b", "/a/.."])
    async def test_dot_segments_are_rejected(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory, path: str
    ) -> None:
        """Dot segments could leave a base URL's path prefix."""
        proxy = make_proxy(upstream.url + "/api")

        with pytest.raises(ValueError, match="segments"):
            await proxy.get(path)

        assert upstream.hits == 0

    async def test_unusable_model_is_a_type_error(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A model pydantic cannot build raises TypeError before sending."""
        proxy = make_proxy(upstream.url)

        with pytest.raises(TypeError, match="model="):
            await proxy.get("/x", model=object())

        assert upstream.hits == 0

    async def test_large_redirect_body_keeps_its_class(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A 302 with a body over the limit is still a redirect error."""
        upstream.script(
            Reply(status=302, body="x" * 5000, headers={"Location": "/elsewhere"})
        )
        proxy = make_proxy(upstream.url, max_body_bytes=1000)

        with pytest.raises(ServiceRedirectError):
            await proxy.get("/x")
