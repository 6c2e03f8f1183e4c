"""OpenTelemetry SDK set-up of the gateway command from the OTEL_* variables."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from loguru import logger

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "DEFAULT_SERVICE_NAME",
    "EXPORTERS_VARIABLE",
    "install_tracer_provider",
    "span_exporters",
]

EXPORTERS_VARIABLE = "OTEL_TRACES_EXPORTER"
# service.name of the spans unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES
# names one.
DEFAULT_SERVICE_NAME = "service-proxies-gateway"
# The OTLP exporters' own defaults name "localhost", which needs a resolver, so
# these are the same ports on the IPv4 loopback address.
_OTLP_DEFAULT_ENDPOINTS = {
    "http/protobuf": "http://127.0.0.1:4318/v1/traces",
    "grpc": "http://127.0.0.1:4317",
}
_OTLP_MODULES = {
    "http/protobuf": "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "grpc": "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
}
_OTLP_PACKAGES = {
    "http/protobuf": "opentelemetry-exporter-otlp-proto-http",
    "grpc": "opentelemetry-exporter-otlp-proto-grpc",
}
_EXPORTER_NAMES = ("console", "otlp", "none")


def install_tracer_provider() -> TracerProvider | None:
    """Install an SDK TracerProvider as the global one when the variables ask.

    That is when opentelemetry-sdk is installed, OTEL_SDK_DISABLED is not
    ``true`` and OTEL_TRACES_EXPORTER names ``console`` or ``otlp``. Otherwise
    the API's default provider stays, no span is made, and only the incoming
    trace context is passed on. The SDK reads its other variables itself,
    such as OTEL_TRACES_SAMPLER and OTEL_RESOURCE_ATTRIBUTES. Spans are
    exported in batches; the SDK flushes them when the process exits.

    Raises:
        ValueError: OTEL_TRACES_EXPORTER or the OTLP protocol names an exporter
            that this function does not know.
    """
    environ = os.environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = _exporter_names(environ)
    if not names:
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        logger.warning(
            "{variable} is set, but opentelemetry-sdk is not installed, so no "
            "spans are recorded. Install service-proxies[tracing] to record them.",
            variable=EXPORTERS_VARIABLE,
        )
        return None
    exporters = span_exporters()
    if not exporters:
        return None
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    logger.info(
        "tracing: spans go to {exporters}",
        exporters=", ".join(type(exporter).__name__ for exporter in exporters),
    )
    return provider


def span_exporters() -> list[SpanExporter]:
    """Build the span exporters that OTEL_TRACES_EXPORTER names.

    An exporter whose package is missing is left out with a warning.

    Raises:
        ValueError: an exporter or OTLP protocol name is not known.
    """
    environ = os.environ
    exporters: list[SpanExporter] = []
    for name in _exporter_names(environ):
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        elif name == "otlp":
            exporter = _otlp_exporter(environ)
            if exporter is not None:
                exporters.append(exporter)
    return exporters


def _exporter_names(environ: Mapping[str, str]) -> list[str]:
    """Return the exporter names of OTEL_TRACES_EXPORTER, without ``none``."""
    raw = environ.get(EXPORTERS_VARIABLE, "")
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in _EXPORTER_NAMES]
    if unknown:
        message = (
            f"{EXPORTERS_VARIABLE} must list {', '.join(_EXPORTER_NAMES)}, got {raw!r}"
        )
        raise ValueError(message)
    return [name for name in names if name != "none"]


def _otlp_exporter(environ: Mapping[str, str]) -> SpanExporter | None:
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol not in _OTLP_MODULES:
        message = (
            f"OTEL_EXPORTER_OTLP_PROTOCOL must be one of "
            f"{', '.join(_OTLP_MODULES)}, got {protocol!r}"
        )
        raise ValueError(message)
    try:
        module = importlib.import_module(_OTLP_MODULES[protocol])
    except ImportError:
        logger.warning(
            "OTLP over {protocol} needs {package}, which is not installed, so "
            "spans are not sent over OTLP. Install it to send them.",
            protocol=protocol,
            package=_OTLP_PACKAGES[protocol],
        )
        return None
    options: dict[str, Any] = {}
    configured = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not configured:
        options["endpoint"] = _OTLP_DEFAULT_ENDPOINTS[protocol]
    exporter: SpanExporter = module.OTLPSpanExporter(**options)
    return exporter
