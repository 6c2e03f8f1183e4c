"""Response bodies above max_body_bytes are rejected without being read whole."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import pytest

from app.proxies import ServiceDecodeError, ServiceServerError
from app.proxies.wire import ERROR_BODY_LIMIT, ERROR_TEXT_LIMIT, CallTarget, read_body
from app.settings import ServiceSettings, Settings
from app.testing import Reply, ScriptedUpstream
from tests.conftest import ProxyFactory

CAP = 1024 * 1024
# What the streaming upstream offers: 256 times the cap.
OFFERED = 256 * CAP
# Bytes the upstream may push before the client's rejection stops it: the socket
# buffers of both ends and aiohttp's read buffer, far below what is offered.
SENT_BOUND = 32 * CAP
_CHUNK = b"x" * (64 * 1024)
_TARGET = CallTarget("user-service", "GET", "/big")


@dataclass
class StreamingUpstream:
    """Loopback server that streams a large body and counts the bytes it sent."""

    status: int
    chunked: bool
    port: int = 0
    sent: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Respond with OFFERED body bytes, stopping when the client disconnects."""
        try:
            await reader.readuntil(b"\r\n\r\n")
            framing = (
                "Transfer-Encoding: chunked"
                if self.chunked
                else f"Content-Length: {OFFERED}"
            )
            writer.write(
                f"HTTP/1.1 {self.status} X\r\nContent-Type: text/plain\r\n"
                f"{framing}\r\n\r\n".encode()
            )
            for _ in range(OFFERED // len(_CHUNK)):
                data = _CHUNK
                if self.chunked:
                    data = f"{len(_CHUNK):x}\r\n".encode() + _CHUNK + b"\r\n"
                writer.write(data)
                await writer.drain()
                self.sent += len(_CHUNK)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()
            self.finished.set()


@asynccontextmanager
async def streaming_upstream(
    status: int, *, chunked: bool
) -> AsyncIterator[StreamingUpstream]:
    """Serve a StreamingUpstream on a free loopback port."""
    upstream = StreamingUpstream(status, chunked)
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    upstream.port = server.sockets[0].getsockname()[1]
    try:
        yield upstream
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await server.wait_closed()


class TestOversizedBody:
    """A 2xx body larger than the cap."""

    @pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
    async def test_rejected_unread(
        self, chunked: bool, make_proxy: ProxyFactory
    ) -> None:
        """The call fails with ServiceDecodeError long before the body ends."""
        async with streaming_upstream(200, chunked=chunked) as upstream:
            proxy = make_proxy(
                f"http://127.0.0.1:{upstream.port}", max_body_bytes=CAP, retries=0
            )

            with pytest.raises(ServiceDecodeError) as caught:
                await proxy.get("/big")
            async with asyncio.timeout(10):
                await upstream.finished.wait()

        assert "exceeds the limit" in str(caught.value.details)
        assert upstream.sent < SENT_BOUND

    @pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
    async def test_limit_is_inclusive(
        self, chunked: bool, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A body of exactly the cap passes and one byte more fails."""
        limit = 1000
        exact = '"' + "x" * (limit - 2) + '"'
        upstream.script(
            Reply(body=exact, content_type="application/json", chunked=chunked),
            Reply(body=exact + " ", content_type="application/json", chunked=chunked),
        )
        proxy = make_proxy(upstream.url, max_body_bytes=limit, retries=0)

        first = await proxy.get("/x")
        with pytest.raises(ServiceDecodeError):
            await proxy.get("/x")

        assert first == "x" * (limit - 2)


class TestErrorBody:
    """Bodies of error responses are cut to ERROR_BODY_LIMIT."""

    async def test_prefix_is_64_kib(
        self, upstream: ScriptedUpstream, session: aiohttp.ClientSession
    ) -> None:
        """read_body keeps the first 64 KiB of a larger error body."""
        upstream.script(Reply(status=500, body=b"e" * (4 * ERROR_BODY_LIMIT)))

        async with session.get(f"{upstream.url}/x") as response:
            body = await read_body(_TARGET, response, CAP)

        assert len(body) == ERROR_BODY_LIMIT

    async def test_details_are_bounded(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A large non-JSON 500 body leaves a bounded excerpt in details."""
        upstream.script(Reply(status=500, body="secret " * 100_000))
        proxy = make_proxy(upstream.url, retries=0)

        with pytest.raises(ServiceServerError) as caught:
            await proxy.get("/x")

        assert isinstance(caught.value.details, str)
        assert len(caught.value.details) <= ERROR_TEXT_LIMIT + 1

    @pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
    async def test_huge_error_body_unread(
        self, chunked: bool, make_proxy: ProxyFactory
    ) -> None:
        """A 500 offering 256 MiB fails after its first 64 KiB are read."""
        async with streaming_upstream(500, chunked=chunked) as upstream:
            proxy = make_proxy(f"http://127.0.0.1:{upstream.port}", retries=0)

            with pytest.raises(ServiceServerError):
                await proxy.get("/big")
            async with asyncio.timeout(10):
                await upstream.finished.wait()

        assert upstream.sent < SENT_BOUND


class TestDefault:
    """The default cap."""

    def test_service_default_is_10_mib(self) -> None:
        """ServiceSettings caps bodies at 10 MiB by default."""
        settings = ServiceSettings(url="http://127.0.0.1:1")

        assert settings.max_body_bytes == 10 * 1024 * 1024

    def test_each_service_has_the_cap(self) -> None:
        """Both services of the loaded settings carry the 10 MiB cap."""
        settings = Settings()

        assert settings.user_service.max_body_bytes == 10 * 1024 * 1024
        assert settings.interview_service.max_body_bytes == 10 * 1024 * 1024
