"""W3C trace context and OpenTelemetry spans of gateway requests and proxy calls.

Only opentelemetry-api is needed at run time. Spans are made only when the
global tracer provider is an SDK one, such as ``opentelemetry.sdk.trace``'s
TracerProvider, at the moment a proxy or the gateway app is built. With the
API's default provider no span is made, and a trace context that came in with
a request is passed on to every upstream call unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, MutableMapping
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Final

import yarl
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import (
    NoOpTracerProvider,
    ProxyTracerProvider,
    SpanKind,
    Status,
    StatusCode,
)

from app.redaction import mask_emails

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

    from app.proxies.errors import ServiceProxyError

__all__ = [
    "INSTRUMENTATION_NAME",
    "CallSpan",
    "CallTracer",
    "active_tracer",
    "call_tracer",
    "incoming_context",
    "inject_trace_context",
    "propagator_fields",
]

# The instrumentation scope of every span this package makes.
INSTRUMENTATION_NAME: Final = "service-proxies"

# Attribute names of the OpenTelemetry semantic conventions for HTTP spans
# (semantic-conventions 1.45, docs/http/http-spans.md), written out so that
# only opentelemetry-api is needed.
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
HTTP_REQUEST_RESEND_COUNT: Final = "http.request.resend_count"
HTTP_ROUTE: Final = "http.route"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
SERVICE_PEER_NAME: Final = "service.peer.name"
URL_FULL: Final = "url.full"
URL_PATH: Final = "url.path"
URL_SCHEME: Final = "url.scheme"
ERROR_TYPE: Final = "error.type"

# The CLIENT span of the logical call running in this context, if one is traced.
_call_span: ContextVar[CallSpan | None] = ContextVar("call_span", default=None)


def active_tracer() -> Tracer | None:
    """Return a tracer of the global provider, or None while no SDK is installed.

    The check costs about 1 µs, since the API reads the environment for each
    call, so callers make it once, when they are built, rather than per call.
    """
    provider = trace.get_tracer_provider()
    if isinstance(provider, ProxyTracerProvider | NoOpTracerProvider):
        return None
    return provider.get_tracer(INSTRUMENTATION_NAME)


def call_tracer(service: str, origin: yarl.URL) -> CallTracer | None:
    """Build the span factory of one service's calls, or None without an SDK."""
    tracer = active_tracer()
    if tracer is None:
        return None
    return CallTracer(tracer, service, origin)


class CallTracer:
    """Start one CLIENT span per logical call of a service, retries included."""

    def __init__(self, tracer: Tracer, service: str, origin: yarl.URL) -> None:
        self._tracer = tracer
        self._attributes: dict[str, str | int] = {SERVICE_PEER_NAME: service}
        if origin.host is not None:
            self._attributes[SERVER_ADDRESS] = origin.host
        if origin.port is not None:
            self._attributes[SERVER_PORT] = origin.port

    def start(self, method: str, url: yarl.URL) -> CallSpan:
        """Start a call's span and make it current until ``CallSpan.end``.

        ``url.full`` leaves out the query parameters, which the engine sends
        apart from ``url`` and which may carry personal data, and masks e-mail
        addresses in the path.
        """
        attributes = {
            **self._attributes,
            HTTP_REQUEST_METHOD: method,
            URL_FULL: mask_emails(str(url)),
        }
        span = self._tracer.start_span(
            method, kind=SpanKind.CLIENT, attributes=attributes
        )
        return CallSpan(span)


class CallSpan:
    """The CLIENT span of one logical call, current while the call runs.

    ``headers`` contains the trace context of this span, which every request
    of the call sends, so the upstream gets the call's span as its parent.
    """

    __slots__ = ("_context_token", "_token", "headers", "sends", "span", "status_code")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.sends = 0
        self.status_code: int | None = None
        context = trace.set_span_in_context(span)
        self.headers: dict[str, str] = {}
        propagate.inject(self.headers, context=context)
        self._context_token = otel_context.attach(context)
        self._token: Token[CallSpan | None] = _call_span.set(self)

    def end(self, error: ServiceProxyError | None = None) -> None:
        """Record the call's outcome, end the span and restore the outer context.

        A failure sets the span status to ERROR and ``error.type`` to the HTTP
        status of a 3xx, 4xx or 5xx response, or else to the error's kind, such
        as ``timeout`` or ``circuit_open``.
        """
        span = self.span
        status_code = self.status_code
        if error is not None and error.status_code is not None:
            status_code = error.status_code
        if status_code is not None:
            span.set_attribute(HTTP_RESPONSE_STATUS_CODE, status_code)
        if self.sends > 1:
            # Retries and followed redirects, as the semantic conventions count.
            span.set_attribute(HTTP_REQUEST_RESEND_COUNT, self.sends - 1)
        if error is not None:
            self._record_error(error, status_code)
        span.end()
        _call_span.reset(self._token)
        otel_context.detach(self._context_token)

    def end_interrupted(self, exc: BaseException) -> None:
        """End the span of a call stopped by an error outside the proxy errors.

        That is most often a cancellation, such as a client gone or a sibling
        call failed, recorded as ``error.type`` ``cancelled``.
        """
        cancelled = isinstance(exc, asyncio.CancelledError)
        error_type = "cancelled" if cancelled else type(exc).__qualname__
        self.span.set_attribute(ERROR_TYPE, error_type)
        self.span.set_status(Status(StatusCode.ERROR, error_type))
        self.end()

    def _record_error(self, error: ServiceProxyError, status_code: int | None) -> None:
        span = self.span
        if status_code is not None and status_code >= 300:
            # The status code gives the reason, so the status has no description.
            span.set_attribute(ERROR_TYPE, str(status_code))
            span.set_status(Status(StatusCode.ERROR))
            return
        kind = error.kind.value
        span.set_attribute(ERROR_TYPE, kind)
        span.set_status(Status(StatusCode.ERROR, kind))


def inject_trace_context(headers: MutableMapping[str, str]) -> CallSpan | None:
    """Add the current trace context to the headers of one outgoing request.

    Inside a traced call the call's span context is added, and the call is
    returned so that the caller can record the response status on it. Without
    one, the current context, such as the one a gateway request brought, is
    added as the global propagator writes it. Without any, the headers stay as
    they are, at the cost of two context variable reads.
    """
    call = _call_span.get()
    if call is not None:
        call.sends += 1
        headers.update(call.headers)
        return call
    current = otel_context.get_current()
    if current:
        propagate.inject(headers, context=current)
    return None


def incoming_context(
    headers: Mapping[str, str], fields: frozenset[str]
) -> Context | None:
    """Extract the trace context of a request, or None when it sent none.

    ``fields`` are the header names of the global propagator, which the caller
    reads once. A request without any of them costs only these lookups.
    """
    if not any(name in headers for name in fields):
        return None
    try:
        return propagate.extract(headers)
    except Exception:  # the propagators parse text that any caller chose
        # A context that cannot be read is dropped, as a malformed traceparent
        # is; the request itself is served.
        return None


def propagator_fields() -> frozenset[str]:
    """Return the header names that the global propagator reads and writes."""
    return frozenset(propagate.get_global_textmap().fields)
