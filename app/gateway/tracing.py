"""The gateway's W3C trace context middleware and its OpenTelemetry SERVER spans."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode

from app import tracing
from app.redaction import mask_emails

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

__all__ = ["trace_context_middleware"]

# Methods that the semantic conventions name. Others are recorded as _OTHER.
_KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)


def trace_context_middleware() -> Middleware:
    """Build the middleware that continues a caller's W3C trace context.

    The context of a request's ``traceparent`` and ``tracestate`` headers is
    current while the request is handled, so every upstream call sends it on.
    When the global tracer provider is an SDK one at the time this is called,
    each request also gets a SERVER span, the parent of its calls' CLIENT spans.
    """
    fields = tracing.propagator_fields()
    tracer = tracing.active_tracer()

    @web.middleware
    async def continue_trace(
        request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        context = tracing.incoming_context(request.headers, fields)
        # Attached rather than passed as a span's parent context, so that the
        # caller's baggage stays in the context that the calls send on.
        token = None if context is None else otel_context.attach(context)
        try:
            if tracer is None:
                return await handler(request)
            return await _handle_in_span(tracer, request, handler)
        finally:
            if token is not None:
                otel_context.detach(token)

    return continue_trace


async def _handle_in_span(
    tracer: Tracer, request: web.Request, handler: Handler
) -> web.StreamResponse:
    name, attributes = _server_span_fields(request)
    with tracer.start_as_current_span(
        name,
        kind=SpanKind.SERVER,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _record_status(span, exc.status)
            raise
        except BaseException as exc:
            span.set_attribute(tracing.ERROR_TYPE, type(exc).__qualname__)
            span.set_status(Status(StatusCode.ERROR))
            raise
        _record_status(span, response.status)
        return response


def _server_span_fields(request: web.Request) -> tuple[str, dict[str, Any]]:
    """Return the span name and start attributes of a request.

    The name is the method and the route template, never the path, so that
    names stay few. An unknown route leaves only the method.
    """
    method = request.method if request.method in _KNOWN_METHODS else "_OTHER"
    attributes: dict[str, Any] = {
        tracing.HTTP_REQUEST_METHOD: method,
        tracing.URL_PATH: mask_emails(request.path),
        tracing.URL_SCHEME: request.scheme,
    }
    name = "HTTP" if method == "_OTHER" else method
    resource = request.match_info.route.resource
    if resource is not None:
        attributes[tracing.HTTP_ROUTE] = resource.canonical
        name = f"{name} {resource.canonical}"
    return name, attributes


def _record_status(span: Span, status: int) -> None:
    span.set_attribute(tracing.HTTP_RESPONSE_STATUS_CODE, status)
    if status >= 500:
        # A 4xx is the client's error, so a SERVER span leaves its status unset.
        span.set_attribute(tracing.ERROR_TYPE, str(status))
        span.set_status(Status(StatusCode.ERROR))
