"""Prometheus metrics of the service proxies, defined on an injected registry."""

from __future__ import annotations

import math
import os
from bisect import bisect_left
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

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
    ``operation`` a proxy method's name or an HTTP verb in lower case,
    ``status`` is ``success`` or ``error`` and ``endpoint`` is one of the base URLs
    in the service's settings, at most 32. No other URL, id or error text is a label.

    NOTE: in multiprocess mode two instances in one process write the same file
    entries and overwrite each other's counts, so a worker builds only one.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        if os.environ.get(MULTIPROC_DIR_VARIABLE):
            # Each worker writes its values to files that the scrape adds up,
            # which only prometheus_client's own metric classes do.
            self._calls: _CallFamilies = _LibraryCallFamilies(registry)
        else:
            self._calls = _TalliedCallFamilies(registry)
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

    def for_call(self, service: str, method: str, operation: str) -> CallMetrics:
        """Return the recorder of the calls of one service, method and operation."""
        retries = self.retries.labels(service, method)
        return self._calls.for_call(service, method, operation, retries)


_CALLS_NAME = "service_calls_total"
_CALLS_HELP = "Logical calls to another service, by outcome; retries are not counted."
_DURATION_NAME = "service_call_duration_milliseconds"
_DURATION_LABELS = ("service", "method", "operation")
_CALL_LABELS = (*_DURATION_LABELS, "status")
_DURATION_HELP = (
    "Duration of a logical call in milliseconds, all attempts and waits included."
)


class CallMetrics:
    """Records the outcome and duration of every call of one service and method.

    The engine records each call once, when it ends, so this is on the path of
    every call and is kept to a few additions. ``retries`` counts the attempts
    after the first one, when each is scheduled.
    """

    __slots__ = ("retries",)

    def __init__(self, retries: Counter) -> None:
        self.retries = retries

    def succeeded(self, duration_ms: float) -> None:
        """Record a call that returned a value."""
        raise NotImplementedError

    def failed(self, duration_ms: float) -> None:
        """Record a call that raised a ServiceProxyError."""
        raise NotImplementedError


class _CallFamilies:
    """Storage of the call counts and durations of every service and operation."""

    def for_call(
        self, service: str, method: str, operation: str, retries: Counter
    ) -> CallMetrics:
        raise NotImplementedError


class _LibraryCallFamilies(_CallFamilies):
    """prometheus_client's Counter and Histogram, which multiprocess mode needs."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._calls = Counter(_CALLS_NAME, _CALLS_HELP, _CALL_LABELS, registry=registry)
        self._duration = Histogram(
            _DURATION_NAME,
            _DURATION_HELP,
            _DURATION_LABELS,
            buckets=DURATION_BUCKETS_MS,
            registry=registry,
        )

    def for_call(
        self, service: str, method: str, operation: str, retries: Counter
    ) -> CallMetrics:
        return _LibraryCallMetrics(
            retries,
            success=self._calls.labels(service, method, operation, "success"),
            error=self._calls.labels(service, method, operation, "error"),
            duration=self._duration.labels(service, method, operation),
        )


class _LibraryCallMetrics(CallMetrics):
    __slots__ = ("_duration", "_error", "_success")

    def __init__(
        self, retries: Counter, *, success: Counter, error: Counter, duration: Histogram
    ) -> None:
        super().__init__(retries)
        self._success = success
        self._error = error
        self._duration = duration

    def succeeded(self, duration_ms: float) -> None:
        self._success.inc()
        self._duration.observe(duration_ms)

    def failed(self, duration_ms: float) -> None:
        self._error.inc()
        self._duration.observe(duration_ms)


class _TalliedCallFamilies(_CallFamilies, Collector):
    """Plain counts per call, turned into the two metric families at scrape time.

    A Counter.inc and a Histogram.observe cost about 13k instructions per call,
    a quarter of the proxy's own cost, because each goes through several Python
    calls and a lock. Here a call adds to three numbers, and the registry
    collects the families from this collector as prometheus_client's documentation shows
    for custom collectors. Names, labels, help and buckets are the ones the
    library's classes would expose, so dashboards and alerts see no difference.
    Reads and writes happen on the event loop's thread; a scrape from another
    thread may see a call counted in the calls and not yet in the histogram.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._tallies: dict[tuple[str, str, str], _TalliedCallMetrics] = {}
        registry.register(self)

    def for_call(
        self, service: str, method: str, operation: str, retries: Counter
    ) -> CallMetrics:
        key = (service, method, operation)
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = _TalliedCallMetrics(retries)
        return tally

    def describe(self) -> Iterator[Metric]:
        # Lets the registry refuse a second collector of the same names.
        yield CounterMetricFamily(_CALLS_NAME, _CALLS_HELP, labels=())
        yield HistogramMetricFamily(_DURATION_NAME, _DURATION_HELP, labels=())

    def collect(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(_CALLS_NAME, _CALLS_HELP, labels=_CALL_LABELS)
        duration = HistogramMetricFamily(
            _DURATION_NAME, _DURATION_HELP, labels=_DURATION_LABELS
        )
        bounds = [floatToGoString(bound) for bound in _BOUNDS]  # type: ignore[no-untyped-call]
        for labels, tally in list(self._tallies.items()):
            counts = list(tally.counts)
            calls.add_metric((*labels, "success"), tally.successes)
            calls.add_metric((*labels, "error"), tally.errors)
            cumulative = 0
            buckets = []
            for bound, count in zip(bounds, counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            duration.add_metric(labels, buckets, tally.total_ms)
        yield calls
        yield duration


_BOUNDS = (*DURATION_BUCKETS_MS, math.inf)


class _TalliedCallMetrics(CallMetrics):
    __slots__ = ("counts", "errors", "successes", "total_ms")

    def __init__(self, retries: Counter) -> None:
        super().__init__(retries)
        self.successes = 0
        self.errors = 0
        self.total_ms = 0.0
        # Calls per bucket, not cumulative; the last bucket is +Inf.
        self.counts = [0] * len(_BOUNDS)

    def succeeded(self, duration_ms: float) -> None:
        self.successes += 1
        self.total_ms += duration_ms
        self.counts[bisect_left(_BOUNDS, duration_ms)] += 1

    def failed(self, duration_ms: float) -> None:
        self.errors += 1
        self.total_ms += duration_ms
        self.counts[bisect_left(_BOUNDS, duration_ms)] += 1


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

    Raises:
        ValueError: ``directory`` names something other than a directory, or
            cannot be made.
    """
    path = Path(directory)
    if path.exists() and not path.is_dir():
        message = (
            f"{MULTIPROC_DIR_VARIABLE} names {directory}, which is not a directory"
        )
        raise ValueError(message)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        message = f"{MULTIPROC_DIR_VARIABLE} names {directory}: {exc.strerror}"
        raise ValueError(message) from None
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
