"""Redirects: refused by default, followed only to the service's own origin."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from app.proxies import (
    ServiceConnectionError,
    ServiceRedirectError,
    ServiceTimeoutError,
)
from app.proxies.engine import MAX_REDIRECTS
from app.testing import Reply, ScriptedUpstream
from tests.conftest import ProxyFactory


def redirect(location: str, status: int = 302) -> Reply:
    """Build a redirect reply."""
    return Reply(status=status, headers={"Location": location})


@asynccontextmanager
async def counting_listener(host: str) -> AsyncIterator[tuple[int, list[str]]]:
    """Listen on a loopback address; yield its port and a list of connections."""
    connections: list[str] = []

    async def accept(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        connections.append(host)
        writer.transport.abort()

    try:
        server = await asyncio.start_server(accept, host, 0)
    except OSError as exc:
        pytest.skip(f"cannot listen on {host}: {exc}")
    try:
        yield server.sockets[0].getsockname()[1], connections
    finally:
        server.close()
        await server.wait_closed()


class TestDefault:
    """follow_redirects is off unless set."""

    async def test_redirect_raises(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A 302 raises ServiceRedirectError and is not followed."""
        upstream.route("/a", redirect("/b"))
        proxy = make_proxy(upstream.url)

        with pytest.raises(ServiceRedirectError) as caught:
            await proxy.get("/a")

        assert caught.value.status_code == 302
        assert upstream.hits == 1


class TestSameOrigin:
    """Redirects to the service's scheme, host and port are followed."""

    @pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
    async def test_relative_location(
        self, status: int, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A relative Location is resolved against the request URL and followed."""
        upstream.route("/a/b", redirect("../c?page=2", status))
        upstream.route("/c", Reply.json({"ok": True}))
        proxy = make_proxy(upstream.url, follow_redirects=True)

        result = await proxy.get("/a/b")

        assert result == {"ok": True}
        assert upstream.requests[1].path == "/c?page=2"

    async def test_redirect_shares_the_attempt_timeout(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """The hop after a slow redirect gets what is left of the timeout."""
        slow = dataclasses.replace(redirect("/b", 307), delay_headers=0.3)
        upstream.route("/a", slow)
        upstream.route("/b", Reply(hang=True))
        proxy = make_proxy(upstream.url, follow_redirects=True, timeout=0.5, retries=0)
        started = time.perf_counter()

        with pytest.raises(ServiceTimeoutError):
            await proxy.get("/a")

        elapsed = time.perf_counter() - started
        budget = int(upstream.requests[1].headers["x-request-deadline-ms"])
        assert budget <= 200
        # 0.5 s of timeout, not 0.3 s plus a fresh 0.5 s.
        assert elapsed < 0.75

    async def test_absolute_location(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """An absolute Location to the same origin is followed."""
        upstream.route("/a", redirect(f"{upstream.url}/b"))
        upstream.route("/b", Reply.json({"ok": True}))
        proxy = make_proxy(upstream.url, follow_redirects=True)

        assert await proxy.get("/a") == {"ok": True}

    async def test_chain_up_to_limit(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """Three redirects in a row are followed."""
        for hop in range(MAX_REDIRECTS):
            upstream.route(f"/{hop}", redirect(f"/{hop + 1}"))
        upstream.route(f"/{MAX_REDIRECTS}", Reply.json({"ok": True}))
        proxy = make_proxy(upstream.url, follow_redirects=True)

        assert await proxy.get("/0") == {"ok": True}
        assert upstream.hits == MAX_REDIRECTS + 1

    async def test_chain_past_limit(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A fourth redirect raises ServiceRedirectError without being followed."""
        for hop in range(MAX_REDIRECTS + 1):
            upstream.route(f"/{hop}", redirect(f"/{hop + 1}"))
        proxy = make_proxy(upstream.url, follow_redirects=True)

        with pytest.raises(ServiceRedirectError, match="more than 3 redirects"):
            await proxy.get("/0")

        assert upstream.hits == MAX_REDIRECTS + 1

    async def test_303_turns_post_into_get(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """After a 303 the body and its Content-Type are dropped."""
        upstream.route("/a", redirect("/b", 303))
        upstream.route("/b", Reply.json({"ok": True}))
        proxy = make_proxy(upstream.url, follow_redirects=True)

        await proxy.post("/a", {"name": "x"})

        followed = upstream.requests[1]
        assert followed.method == "GET"
        assert followed.body == b""
        assert "content-type" not in followed.headers

    async def test_307_keeps_method_and_body(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """After a 307 the same method and body are sent again."""
        upstream.route("/a", redirect("/b", 307))
        upstream.route("/b", Reply.json({"ok": True}))
        proxy = make_proxy(upstream.url, follow_redirects=True)

        await proxy.put("/a", {"name": "x"})

        followed = upstream.requests[1]
        assert followed.method == "PUT"
        assert followed.json() == {"name": "x"}


class TestNotRepeated:
    """A write that reached the service is not sent again."""

    async def test_post_after_303_not_resent(self, make_proxy: ProxyFactory) -> None:
        """A POST redirected by 303 is not retried when the redirect cannot connect."""
        methods: list[bytes] = []
        servers: list[asyncio.Server] = []

        async def answer_once(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            methods.append(head.split(b" ", 1)[0])
            lengths = [
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]
            await reader.readexactly(sum(lengths))
            writer.write(
                b"HTTP/1.1 303 See Other\r\nLocation: /b\r\n"
                b"Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            await writer.drain()
            writer.close()
            # Stop listening, so that the redirect's connection is refused.
            servers[0].close()

        server = await asyncio.start_server(answer_once, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        proxy = make_proxy(f"http://127.0.0.1:{port}", follow_redirects=True)

        with pytest.raises(ServiceConnectionError) as caught:
            await proxy.post("/a", {"name": "x"})
        await server.wait_closed()

        assert methods == [b"POST"]
        assert caught.value.attempts == 1
        assert caught.value.request_sent


class TestOtherOrigin:
    """Redirects that leave the service's origin are rejected unsent."""

    async def test_other_loopback_host(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """127.0.0.2 is named in the error and never connected to."""
        async with counting_listener("127.0.0.2") as (port, connections):
            upstream.route("/a", redirect(f"http://127.0.0.2:{port}/b"))
            proxy = make_proxy(upstream.url, follow_redirects=True)

            with pytest.raises(ServiceRedirectError) as caught:
                await proxy.get("/a")

        assert f"127.0.0.2:{port}" in str(caught.value.details)
        assert caught.value.status_code == 302
        assert upstream.hits == 1
        assert connections == []

    async def test_other_port(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """The same host on another port is another origin."""
        async with ScriptedUpstream() as other:
            upstream.route("/a", redirect(f"{other.url}/b"))
            proxy = make_proxy(upstream.url, follow_redirects=True)

            with pytest.raises(ServiceRedirectError, match=str(other.port)):
                await proxy.get("/a")

            assert other.connections == 0

    @pytest.mark.parametrize(
        "location",
        [
            "https://127.0.0.1:{port}/b",
            "http://localhost:{port}/b",
            "//127.0.0.2:{port}/b",
            "http://127.0.0.1:{port}@127.0.0.2:{port}/b",
        ],
        ids=["scheme", "hostname", "network-path", "userinfo"],
    )
    async def test_other_origin_forms(
        self, location: str, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """Another scheme, host name or authority is rejected after one request."""
        upstream.route("/a", redirect(location.format(port=upstream.port)))
        proxy = make_proxy(upstream.url, follow_redirects=True)

        with pytest.raises(ServiceRedirectError, match="rejected"):
            await proxy.get("/a")

        assert upstream.hits == 1

    async def test_rejected_mid_chain(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A same-origin hop followed by an off-origin one stops at the second."""
        upstream.route("/a", redirect("/b"))
        upstream.route("/b", redirect("http://127.0.0.2:9/c"))
        proxy = make_proxy(upstream.url, follow_redirects=True)

        with pytest.raises(ServiceRedirectError, match=re.escape("127.0.0.2")):
            await proxy.get("/a")

        assert upstream.hits == 2

    async def test_location_query_not_in_error(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """The error names the rejected origin but not its path or query."""
        upstream.route("/a", redirect("http://127.0.0.2:9/steal?token=abc123"))
        proxy = make_proxy(upstream.url, follow_redirects=True)

        with pytest.raises(ServiceRedirectError) as caught:
            await proxy.get("/a")

        assert "abc123" not in str(caught.value)
        assert "/steal" not in str(caught.value)
