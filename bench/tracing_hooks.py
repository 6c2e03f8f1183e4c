"""Time the tracing hooks of one proxy call: ``python -m bench.tracing_hooks``.

It prints the cost per call, with timeit, of the hooks the call engine runs:
the span check when the call starts and the trace context hook of its request.
It measures three cases: no SDK and no incoming context, no SDK inside a
caller's context, and an SDK tracer provider whose spans go to a batch
processor with an exporter that drops them.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable, Sequence

import yarl
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from app import tracing

URL = yarl.URL("http://127.0.0.1:3003/users/1")
ORIGIN = yarl.URL("http://127.0.0.1:3003")
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
RUNS = 200_000
REPEATS = 5


class _DroppingExporter(SpanExporter):
    """Accept every batch and keep nothing, so only the SDK's own work counts."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def per_call_ns(hook: Callable[[], object], runs: int = RUNS) -> float:
    """Return the best of REPEATS timeit runs, in nanoseconds per call."""
    best = min(timeit.repeat(hook, number=runs, repeat=REPEATS))
    return best / runs * 1e9


def engine_hooks(call_tracer: tracing.CallTracer | None) -> None:
    """Run the hooks of one call with one attempt, as CallEngine does."""
    span = None if call_tracer is None else call_tracer.start("GET", URL)
    headers = {"Accept": "application/json"}
    call_span = tracing.inject_trace_context(headers)
    if call_span is not None:
        call_span.status_code = 200
    if span is not None:
        span.end()


def no_hooks(call_tracer: tracing.CallTracer | None) -> None:
    """Do what engine_hooks does apart from the hooks, as the baseline."""
    headers = {"Accept": "application/json"}
    if call_tracer is not None:
        headers.clear()


def main() -> None:
    """Print the three measurements, each less the baseline."""
    baseline = per_call_ns(lambda: no_hooks(None))
    print(f"baseline, subtracted below:  {baseline:8.0f} ns per call")
    no_sdk = per_call_ns(lambda: engine_hooks(None)) - baseline
    print(f"no SDK, no incoming context: {no_sdk:8.0f} ns per call")

    incoming = propagate.extract({"traceparent": TRACEPARENT})
    token = otel_context.attach(incoming)
    try:
        with_context = per_call_ns(lambda: engine_hooks(None)) - baseline
    finally:
        otel_context.detach(token)
    print(f"no SDK, caller's context:    {with_context:8.0f} ns per call")

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_DroppingExporter()))
    trace.set_tracer_provider(provider)
    call_tracer = tracing.call_tracer("user-service", ORIGIN)
    try:
        runs = RUNS // 10
        with_sdk = per_call_ns(lambda: engine_hooks(call_tracer), runs) - baseline
    finally:
        provider.shutdown()
    print(f"SDK, batch processor:        {with_sdk:8.0f} ns per call")


if __name__ == "__main__":
    main()
