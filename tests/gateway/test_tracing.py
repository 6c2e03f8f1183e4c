"""W3C trace context through the gateway: spans, upstream headers and log lines."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

from app.logs import configure_logging
from app.testing import Reply, ScriptedUpstream
from tests.gateway.test_degraded import gateway
from tests.gateway.test_request_id import USER, settings_for
from tests.helpers import Sandbox

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
HEADERS = {"traceparent": TRACEPARENT, "X-Request-Id": "rid-trace-1"}


def spans_of_kind(exporter: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    """Return the finished spans of one kind."""
    return [span for span in exporter.get_finished_spans() if span.kind is kind]


def span_id(span: ReadableSpan) -> str:
    """Return a span's id in W3C hex form."""
    return trace.format_span_id(span.context.span_id)


def client_span_for(exporter: InMemorySpanExporter, path: str) -> ReadableSpan:
    """Return the CLIENT span whose url.full ends with ``path``."""
    for span in spans_of_kind(exporter, SpanKind.CLIENT):
        if str((span.attributes or {}).get("url.full", "")).endswith(path):
            return span
    pytest.fail(f"no CLIENT span for {path}")


@contextmanager
def json_logs(level: str) -> Iterator[None]:
    """Write JSON log lines of ``level`` and above to stderr within the block."""
    configure_logging(level, "json")
    try:
        yield
    finally:
        configure_logging("INFO", "text")


async def fetch_dashboard(
    upstream: ScriptedUpstream,
    sandbox: Sandbox,
    headers: dict[str, str],
    path: str = "/api/dashboard/1",
) -> int:
    """Request a dashboard through a gateway built now and return the status."""
    async with (
        gateway(settings_for(upstream, sandbox)) as client,
        client.get(path, headers=headers) as response,
    ):
        return response.status


class TestWithSdk:
    """An installed SDK gives SERVER and CLIENT spans in the caller's trace."""

    async def test_upstream_parent_is_client_span(
        self,
        span_exporter: InMemorySpanExporter,
        upstream: ScriptedUpstream,
        sandbox: Sandbox,
    ) -> None:
        """The upstream gets the caller's trace id and its call's span as parent."""
        upstream.script(Reply.json(USER))

        status = await fetch_dashboard(upstream, sandbox, HEADERS)

        assert status == 200
        assert upstream.requests
        for request in upstream.requests:
            _, trace_id, parent_id, _ = request.headers["traceparent"].split("-")
            client = client_span_for(span_exporter, request.route_path)
            assert trace_id == TRACE_ID
            assert parent_id != PARENT_ID
            assert parent_id == span_id(client)
            assert request.headers["x-request-id"] == "rid-trace-1"

    async def test_spans_form_one_tree(
        self,
        span_exporter: InMemorySpanExporter,
        upstream: ScriptedUpstream,
        sandbox: Sandbox,
    ) -> None:
        """Caller's span, then the SERVER span, then one CLIENT span per call."""
        upstream.script(Reply.json(USER))

        await fetch_dashboard(upstream, sandbox, HEADERS)

        (server,) = spans_of_kind(span_exporter, SpanKind.SERVER)
        clients = spans_of_kind(span_exporter, SpanKind.CLIENT)
        assert server.parent is not None
        assert trace.format_span_id(server.parent.span_id) == PARENT_ID
        assert trace.format_trace_id(server.context.trace_id) == TRACE_ID
        services = {(span.attributes or {})["service.peer.name"] for span in clients}
        assert services == {"user-service", "interview-service"}
        for client in clients:
            assert client.parent is not None
            assert client.parent.span_id == server.context.span_id

    async def test_server_span_attributes(
        self,
        span_exporter: InMemorySpanExporter,
        upstream: ScriptedUpstream,
        sandbox: Sandbox,
    ) -> None:
        """The SERVER span is named by route and records the response status."""
        upstream.script(Reply.json(USER))

        await fetch_dashboard(upstream, sandbox, HEADERS)

        (server,) = spans_of_kind(span_exporter, SpanKind.SERVER)
        attributes = server.attributes or {}
        assert server.name == "GET /api/dashboard/{user_id}"
        assert attributes["http.route"] == "/api/dashboard/{user_id}"
        assert attributes["http.request.method"] == "GET"
        assert attributes["url.path"] == "/api/dashboard/1"
        assert attributes["http.response.status_code"] == 200
        assert server.status.status_code is StatusCode.UNSET

    async def test_upstream_failure_marks_server_span(
        self,
        span_exporter: InMemorySpanExporter,
        upstream: ScriptedUpstream,
        sandbox: Sandbox,
    ) -> None:
        """A 502 from the gateway sets the SERVER span's status to ERROR."""
        upstream.script(Reply.json({"message": "broken"}, 500))

        status = await fetch_dashboard(upstream, sandbox, HEADERS)

        (server,) = spans_of_kind(span_exporter, SpanKind.SERVER)
        attributes = server.attributes or {}
        assert status == 502
        assert attributes["http.response.status_code"] == 502
        assert attributes["error.type"] == "502"
        assert server.status.status_code is StatusCode.ERROR

    async def test_unknown_route_is_named_by_method(
        self,
        span_exporter: InMemorySpanExporter,
        upstream: ScriptedUpstream,
        sandbox: Sandbox,
    ) -> None:
        """A 404 route has no template, so the span is named GET, status unset."""
        status = await fetch_dashboard(upstream, sandbox, HEADERS, path="/nowhere")

        (server,) = spans_of_kind(span_exporter, SpanKind.SERVER)
        attributes = server.attributes or {}
        assert status == 404
        assert server.name == "GET"
        assert "http.route" not in attributes
        assert attributes["http.response.status_code"] == 404
        assert server.status.status_code is StatusCode.UNSET

    async def test_request_without_context_starts_a_trace(
        self,
        span_exporter: InMemorySpanExporter,
        upstream: ScriptedUpstream,
        sandbox: Sandbox,
    ) -> None:
        """Without a traceparent the SERVER span is a root, and calls join it."""
        upstream.script(Reply.json(USER))

        await fetch_dashboard(upstream, sandbox, {})

        (server,) = spans_of_kind(span_exporter, SpanKind.SERVER)
        _, trace_id, _, _ = upstream.requests[0].headers["traceparent"].split("-")
        assert server.parent is None
        assert trace_id == trace.format_trace_id(server.context.trace_id)


class TestWithoutSdk:
    """The API's default provider: no spans, the context passes through."""

    async def test_traceparent_reaches_upstream_unchanged(
        self, upstream: ScriptedUpstream, sandbox: Sandbox
    ) -> None:
        """The upstream gets the caller's traceparent and request id as they were."""
        upstream.script(Reply.json(USER))

        status = await fetch_dashboard(
            upstream, sandbox, {**HEADERS, "tracestate": "vendor=opaque"}
        )

        assert status == 200
        assert upstream.requests
        for request in upstream.requests:
            assert request.headers["traceparent"] == TRACEPARENT
            assert request.headers["tracestate"] == "vendor=opaque"
            assert request.headers["x-request-id"] == "rid-trace-1"

    async def test_invalid_traceparent_is_dropped(
        self, upstream: ScriptedUpstream, sandbox: Sandbox
    ) -> None:
        """A traceparent that is not W3C is not passed on."""
        upstream.script(Reply.json(USER))

        await fetch_dashboard(upstream, sandbox, {"traceparent": "00-zz-yy-01"})

        assert "traceparent" not in upstream.requests[0].headers


async def raw_get(client: Any, path: str, header: bytes) -> bytes:
    """Send a GET with one raw header line, bytes as they are, and read the reply."""
    url = client._base_url
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(
            b"GET "
            + path.encode()
            + b" HTTP/1.1\r\nHost: gateway\r\n"
            + header
            + b"\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()


class TestHostileContext:
    """Trace headers that the propagators cannot read are ignored."""

    @pytest.mark.parametrize("sdk", [False, True])
    async def test_undecodable_baggage_is_ignored(
        self,
        request: pytest.FixtureRequest,
        upstream: ScriptedUpstream,
        sandbox: Sandbox,
        sdk: bool,
    ) -> None:
        """A baggage header that is not UTF-8 leaves the dashboard a JSON 200."""
        if sdk:
            request.getfixturevalue("span_exporter")
        upstream.script(Reply.json(USER))

        async with gateway(settings_for(upstream, sandbox)) as client:
            reply = await raw_get(client, "/api/dashboard/1", b"baggage: a=\xff")

        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert json.loads(body)["user"]["id"] == USER["id"]

    async def test_baggage_reaches_upstream_with_sdk(
        self,
        span_exporter: InMemorySpanExporter,
        upstream: ScriptedUpstream,
        sandbox: Sandbox,
    ) -> None:
        """The caller's baggage goes on with the call's span context."""
        upstream.script(Reply.json(USER))

        await fetch_dashboard(upstream, sandbox, {**HEADERS, "baggage": "tenant=acme"})

        assert upstream.requests
        for sent in upstream.requests:
            assert sent.headers["baggage"] == "tenant=acme"
            assert sent.headers["traceparent"].split("-")[1] == TRACE_ID


class TestJsonLogLines:
    """Every per-call JSON log line carries the ids of its request and span."""

    FIELDS = (
        "time",
        "level",
        "message",
        "service",
        "method",
        "status",
        "duration_ms",
        "request_id",
        "trace_id",
        "span_id",
    )

    @staticmethod
    def call_lines(err: str, service: str) -> list[dict[str, Any]]:
        """Parse the JSON lines of one service's calls that name a status."""
        lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        return [
            line
            for line in lines
            if line.get("service") == service and "status" in line
        ]

    async def test_response_lines_carry_every_field(
        self,
        span_exporter: InMemorySpanExporter,
        upstream: ScriptedUpstream,
        sandbox: Sandbox,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """An attempt's response line has each field, span_id of its CLIENT span."""
        upstream.script(Reply.json(USER))
        with json_logs("DEBUG"):
            await fetch_dashboard(upstream, sandbox, HEADERS)

        lines = self.call_lines(capsys.readouterr().err, "interview-service")
        client_ids = {
            span_id(span) for span in spans_of_kind(span_exporter, SpanKind.CLIENT)
        }
        assert lines
        for line in lines:
            for field in self.FIELDS:
                assert field in line, f"{field} missing from {line}"
            assert line["request_id"] == "rid-trace-1"
            assert line["trace_id"] == TRACE_ID
            assert line["span_id"] in client_ids
            assert line["status"] == 200
            assert line["method"] == "GET"

    async def test_failure_line_carries_every_field(
        self,
        span_exporter: InMemorySpanExporter,
        upstream: ScriptedUpstream,
        sandbox: Sandbox,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A call's final failure line has each field, with the HTTP status."""
        upstream.script(Reply.json({"message": "broken"}, 500))
        with json_logs("INFO"):
            await fetch_dashboard(upstream, sandbox, HEADERS)

        lines = self.call_lines(capsys.readouterr().err, "user-service")
        failures = [line for line in lines if line["level"] == "ERROR"]
        assert failures
        for line in failures:
            for field in self.FIELDS:
                assert field in line, f"{field} missing from {line}"
            assert line["status"] == 500
            assert line["trace_id"] == TRACE_ID

    async def test_lines_without_sdk_carry_caller_ids(
        self,
        upstream: ScriptedUpstream,
        sandbox: Sandbox,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Without an SDK, lines carry the caller's trace id and parent span id."""
        upstream.script(Reply.json(USER))
        with json_logs("DEBUG"):
            await fetch_dashboard(upstream, sandbox, HEADERS)

        lines = self.call_lines(capsys.readouterr().err, "interview-service")
        assert lines
        for line in lines:
            assert line["trace_id"] == TRACE_ID
            assert line["span_id"] == PARENT_ID
            assert line["request_id"] == "rid-trace-1"

    async def test_lines_without_context_have_no_trace_id(
        self,
        upstream: ScriptedUpstream,
        sandbox: Sandbox,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Without an SDK or a caller's context, lines carry no trace fields."""
        upstream.script(Reply.json(USER))
        with json_logs("DEBUG"):
            await fetch_dashboard(upstream, sandbox, {"X-Request-Id": "rid-2"})

        lines = self.call_lines(capsys.readouterr().err, "interview-service")
        assert lines
        for line in lines:
            assert "trace_id" not in line
            assert "span_id" not in line
            assert line["request_id"] == "rid-2"
