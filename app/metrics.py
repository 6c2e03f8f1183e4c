"""Prometheus metrics of the service proxies, defined on an injected registry."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = [
    "DURATION_BUCKETS_MS",
    "HTTP_METHODS",
    "MULTIPROC_DIR_VARIABLE",
    "CallMetrics",
    "ProxyMetrics",
    "clean_multiprocess_dir",
    "scrape_registry",
]

# prometheus_client's multiprocess mode is on when this variable names a directory
# at the time prometheus_client is first imported.
MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

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

    NOTE: in multiprocess mode two instances in one process write the same file
    entries and overwrite each other's counts, so a worker builds only one.
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
            # With several worker processes, the highest state among the live
            # ones: 0 only when every worker's circuit is closed. A dead
            # worker's value leaves with it, so its open circuit is not shown.
            multiprocess_mode="livemax",
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
        self.cache_backend_errors = Counter(
            "service_cache_backend_errors_total",
            "Operations on the shared cache backend that failed or were skipped, "
            "by operation (read, write, invalidate) and reason: connection, "
            "timeout, error, invalid_entry, backoff.",
            ["service", "operation", "reason"],
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
            # With several workers, 1 while any live worker has ejected it.
            multiprocess_mode="livemax",
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


def scrape_registry(registry: CollectorRegistry) -> CollectorRegistry:
    """Return the registry that ``/metrics`` serves.

    In prometheus_client's multiprocess mode this is a new registry whose
    MultiProcessCollector adds up the files of every process, so a scrape shows
    the totals of all workers. The counters and histograms of dead processes
    stay in those totals. Otherwise it is ``registry`` itself.
    """
    directory = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if not directory:
        return registry
    merged = CollectorRegistry()
    MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]
    return merged


def clean_multiprocess_dir(directory: str) -> None:
    """Create ``directory`` if needed and delete the metric files in it.

    Run it before any process of a new start records a metric: files left by an
    earlier run would otherwise add their counts to the new totals. Only the
    ``*.db`` files that prometheus_client writes are deleted.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
