"""CLIENT spans of proxy calls and the trace context their requests carry."""

from __future__ import annotations

import asyncio
import timeit
from collections.abc import Iterator

import pytest
import yarl
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

from app import tracing
from app.proxies import ServiceProxyError
from app.testing import Reply, ScriptedUpstream, closed_port_url
from tests.conftest import ProxyFactory
from tests.gateway.test_request_id import USER
from tests.testing.test_upstream import wait_for_hits

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.fixture
def incoming_trace() -> Iterator[None]:
    """Make a caller's W3C trace context current, as the gateway does."""
    context = propagate.extract(
        {"traceparent": TRACEPARENT, "tracestate": "vendor=opaque"}
    )
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)


def client_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """Return the finished CLIENT spans."""
    return [
        span for span in exporter.get_finished_spans() if span.kind is SpanKind.CLIENT
    ]


def traceparent_parts(value: str) -> list[str]:
    """Split a traceparent into version, trace id, parent id and flags."""
    return value.split("-")


class TestClientSpans:
    """One CLIENT span per logical call, with the HTTP attributes."""

    async def test_success_span_attributes(
        self,
        span_exporter: InMemorySpanExporter,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
    ) -> None:
        """A successful call records service, method, status and address."""
        upstream.script(Reply.json(USER))
        proxy = make_proxy(upstream.url)

        await proxy.get_user("1")

        (span,) = client_spans(span_exporter)
        attributes = span.attributes or {}
        assert span.name == "GET"
        assert attributes["service.peer.name"] == "user-service"
        assert attributes["http.request.method"] == "GET"
        assert attributes["http.response.status_code"] == 200
        assert attributes["server.address"] == "127.0.0.1"
        assert attributes["server.port"] == upstream.port
        assert attributes["url.full"] == f"{upstream.url}/users/1"
        assert "http.request.resend_count" not in attributes
        assert "error.type" not in attributes
        assert span.status.status_code is StatusCode.UNSET

    async def test_retried_call_counts_resends(
        self,
        span_exporter: InMemorySpanExporter,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
    ) -> None:
        """A call that succeeds on its third attempt has one span, resend count 2."""
        busy = Reply.json({"message": "busy"}, 503)
        upstream.script(busy, busy, Reply.json(USER))
        proxy = make_proxy(upstream.url)

        await proxy.get_user("1")

        (span,) = client_spans(span_exporter)
        attributes = span.attributes or {}
        assert attributes["http.request.resend_count"] == 2
        assert attributes["http.response.status_code"] == 200
        assert span.status.status_code is StatusCode.UNSET

    async def test_every_attempt_carries_the_span(
        self,
        span_exporter: InMemorySpanExporter,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
    ) -> None:
        """Each attempt sends the call's trace id and span id as its parent."""
        busy = Reply.json({"message": "busy"}, 503)
        upstream.script(busy, Reply.json(USER))
        proxy = make_proxy(upstream.url)

        await proxy.get_user("1")

        (span,) = client_spans(span_exporter)
        sent = [traceparent_parts(r.headers["traceparent"]) for r in upstream.requests]
        assert len(sent) == 2
        for _, trace_id, parent_id, flags in sent:
            assert trace_id == trace.format_trace_id(span.context.trace_id)
            assert parent_id == trace.format_span_id(span.context.span_id)
            # The sampled bit; the SDK may also set Level 2's random-id bit.
            assert int(flags, 16) & 1 == 1

    async def test_exhausted_retries_record_error(
        self,
        span_exporter: InMemorySpanExporter,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
    ) -> None:
        """A 503 on every attempt gives status ERROR, error.type 503, 3 resends."""
        upstream.script(Reply.json({"message": "busy"}, 503))
        proxy = make_proxy(upstream.url)

        with pytest.raises(ServiceProxyError):
            await proxy.get_user("1")

        (span,) = client_spans(span_exporter)
        attributes = span.attributes or {}
        assert span.status.status_code is StatusCode.ERROR
        assert attributes["error.type"] == "503"
        assert attributes["http.response.status_code"] == 503
        assert attributes["http.request.resend_count"] == 3

    async def test_404_is_an_error_without_resends(
        self,
        span_exporter: InMemorySpanExporter,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
    ) -> None:
        """A 4xx ends a CLIENT span with ERROR, as the HTTP conventions require."""
        upstream.script(Reply.json({"message": "no such user"}, 404))
        proxy = make_proxy(upstream.url)

        with pytest.raises(ServiceProxyError):
            await proxy.get_user("1")

        (span,) = client_spans(span_exporter)
        attributes = span.attributes or {}
        assert span.status.status_code is StatusCode.ERROR
        assert attributes["error.type"] == "404"
        assert "http.request.resend_count" not in attributes

    async def test_refused_connection_records_kind(
        self, span_exporter: InMemorySpanExporter, make_proxy: ProxyFactory
    ) -> None:
        """Without a response, error.type is the error's kind and no status is set."""
        proxy = make_proxy(closed_port_url(), retries=1)

        with pytest.raises(ServiceProxyError):
            await proxy.get_user("1")

        (span,) = client_spans(span_exporter)
        attributes = span.attributes or {}
        assert attributes["error.type"] == "connection"
        assert "http.response.status_code" not in attributes
        assert attributes["http.request.resend_count"] == 1
        assert span.status.description == "connection"

    async def test_undecodable_body_records_decode(
        self,
        span_exporter: InMemorySpanExporter,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
    ) -> None:
        """A 200 whose body is not JSON records error.type decode, status 200."""
        upstream.script(Reply.text("not json"))
        proxy = make_proxy(upstream.url)

        with pytest.raises(ServiceProxyError):
            await proxy.get_user("1")

        (span,) = client_spans(span_exporter)
        attributes = span.attributes or {}
        assert attributes["error.type"] == "decode"
        assert attributes["http.response.status_code"] == 200

    async def test_cancelled_call_ends_its_span(
        self,
        span_exporter: InMemorySpanExporter,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
    ) -> None:
        """A call cancelled by its caller ends its span with error.type cancelled."""
        upstream.script(Reply(hang=True))
        proxy = make_proxy(upstream.url)
        call = asyncio.create_task(proxy.get_user("1"))
        await wait_for_hits(upstream, 1)

        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

        (span,) = client_spans(span_exporter)
        attributes = span.attributes or {}
        assert attributes["error.type"] == "cancelled"
        assert span.status.status_code is StatusCode.ERROR

    async def test_span_is_child_of_current_context(
        self,
        span_exporter: InMemorySpanExporter,
        incoming_trace: None,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
    ) -> None:
        """Within a caller's trace, the span joins it and tracestate is kept."""
        upstream.script(Reply.json(USER))
        proxy = make_proxy(upstream.url)

        await proxy.get_user("1")

        (span,) = client_spans(span_exporter)
        headers = upstream.requests[0].headers
        _, trace_id, parent_id, _ = traceparent_parts(headers["traceparent"])
        assert span.parent is not None
        assert trace.format_span_id(span.parent.span_id) == PARENT_ID
        assert trace_id == TRACE_ID
        assert parent_id == trace.format_span_id(span.context.span_id)
        assert headers["tracestate"] == "vendor=opaque"

    async def test_call_span_is_current_only_during_call(
        self,
        span_exporter: InMemorySpanExporter,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
    ) -> None:
        """After a call, the context is what it was before it."""
        upstream.script(Reply.json(USER))
        proxy = make_proxy(upstream.url)
        before = otel_context.get_current()

        await proxy.get_user("1")

        assert otel_context.get_current() == before
        assert not trace.get_current_span().get_span_context().is_valid


class TestWithoutSdk:
    """With the API's default provider no span is made."""

    async def test_incoming_context_passes_unchanged(
        self,
        incoming_trace: None,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
    ) -> None:
        """The caller's traceparent and tracestate reach the upstream as they were."""
        upstream.script(Reply.json({"message": "busy"}, 503), Reply.json(USER))
        proxy = make_proxy(upstream.url)

        await proxy.get_user("1")

        assert len(upstream.requests) == 2
        for request in upstream.requests:
            assert request.headers["traceparent"] == TRACEPARENT
            assert request.headers["tracestate"] == "vendor=opaque"

    async def test_no_context_adds_no_headers(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """Without a trace context, no traceparent is invented."""
        upstream.script(Reply.json(USER))
        proxy = make_proxy(upstream.url)

        await proxy.get_user("1")

        assert "traceparent" not in upstream.requests[0].headers

    def test_no_tracer_without_sdk(self) -> None:
        """The API's default provider gives no tracer, so calls make no span."""
        origin = yarl.URL("http://127.0.0.1:1")

        assert tracing.active_tracer() is None
        assert tracing.call_tracer("user-service", origin) is None

    def test_hook_costs_under_a_microsecond(self) -> None:
        """The per-request hook without SDK or context stays far below 1 µs."""
        headers: dict[str, str] = {}
        runs = 100_000

        seconds = min(
            timeit.repeat(
                lambda: tracing.inject_trace_context(headers), number=runs, repeat=5
            )
        )

        assert headers == {}
        # The bound is loose because the test machine is a shared 2-core one,
        # where the hook measured 0.05 to 0.3 µs.
        assert seconds / runs < 1e-6
