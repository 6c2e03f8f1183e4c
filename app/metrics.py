"""Prometheus metrics of the service proxies, defined on an injected registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["DURATION_BUCKETS_MS", "HTTP_METHODS", "CallMetrics", "ProxyMetrics"]

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

# Milliseconds, from a fast loopback call to the longest deadline a call may have.
DURATION_BUCKETS_MS = (
    1.0,
    2.5,
    5.0,
    10.0,
    25.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
    2500.0,
    5000.0,
    10000.0,
    30000.0,
    60000.0,
)


class ProxyMetrics:
    """The metric families that every proxy records into.

    Labels are bounded: ``service`` comes from code, ``method`` is an HTTP method,
    ``status`` is ``success`` or ``error`` and ``endpoint`` is one of the base URLs
    in the service's settings, at most 32. No other URL, id or error text is a label.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.calls = Counter(
            "service_calls_total",
            "Logical calls to another service, by outcome; retries are not counted.",
            ["service", "method", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "service_call_duration_milliseconds",
            "Duration of a logical call in milliseconds, all attempts and waits "
            "included.",
            ["service", "method"],
            buckets=DURATION_BUCKETS_MS,
            registry=registry,
        )
        self.retries = Counter(
            "service_retries_total",
            "Attempts after the first one of a logical call.",
            ["service", "method"],
            registry=registry,
        )
        self.circuit_state = Gauge(
            "service_circuit_state",
            "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
            ["service"],
            registry=registry,
        )
        self.rejected = Counter(
            "service_calls_rejected_total",
            "Attempts the proxy refused to send, by reason: circuit_open, "
            "bulkhead_full, retry_budget, deadline, cooldown.",
            ["service", "reason"],
            registry=registry,
        )
        self.retries_skipped = Counter(
            "service_retries_skipped_total",
            "Failed attempts that were not retried, by reason: not_idempotent, "
            "not_retryable, attempts_exhausted.",
            ["service", "reason"],
            registry=registry,
        )
        self.cache_requests = Counter(
            "service_cache_requests_total",
            "Cached reads by result: hit, miss, or stale (served after an error).",
            ["service", "result"],
            registry=registry,
        )

        self.endpoint_attempts = Counter(
            "service_endpoint_attempts_total",
            "Attempts sent to each endpoint of a service with several endpoints.",
            ["service", "endpoint"],
            registry=registry,
        )
        self.endpoint_ejections = Counter(
            "service_endpoint_ejections_total",
            "Ejections of an endpoint by outlier detection.",
            ["service", "endpoint"],
            registry=registry,
        )
        self.endpoint_state = Gauge(
            "service_endpoint_state",
            "Endpoint state: 0 active, 1 ejected.",
            ["service", "endpoint"],
            registry=registry,
        )

    def for_call(self, service: str, method: str) -> CallMetrics:
        """Return the label children of one service and HTTP method."""
        return CallMetrics(
            success=self.calls.labels(service, method, "success"),
            error=self.calls.labels(service, method, "error"),
            duration=self.duration.labels(service, method),
            retries=self.retries.labels(service, method),
        )


@dataclass(frozen=True, slots=True)
class CallMetrics:
    """Label children bound once, so that a call pays no label lookup."""

    success: Counter
    error: Counter
    duration: Histogram
    retries: Counter
