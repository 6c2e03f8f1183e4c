"""Endpoints of one service: load spreading and passive outlier detection."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import yarl
from loguru import logger
from prometheus_client import Counter, Gauge

from app.metrics import ProxyMetrics
from app.proxies.errors import (
    ServiceDeadlineError,
    ServiceProxyError,
    ServiceRequestError,
    ServiceServerError,
    ServiceSessionClosedError,
)
from app.redaction import redact_record
from app.resilience.clock import Clock, monotonic
from app.settings import ServiceSettings

__all__ = [
    "ACTIVE",
    "EJECTED",
    "Endpoint",
    "EndpointSet",
    "EndpointState",
    "is_endpoint_failure",
]

ACTIVE = "active"
EJECTED = "ejected"
# Values of the service_endpoint_state gauge.
_GAUGE_VALUES = {ACTIVE: 0, EJECTED: 1}


@dataclass(frozen=True, slots=True)
class EndpointState:
    """Point-in-time view of one endpoint of a service.

    With a single endpoint the proxy tracks no per-endpoint counts, so the
    fields after ``state`` stay at their defaults.
    """

    url: str
    state: str
    """``active`` or ``ejected``."""
    outstanding: int = 0
    """Attempts in flight to this endpoint."""
    consecutive_failures: int = 0
    ejections: int = 0
    """Times this endpoint was ejected since the proxy started."""
    ejected_for: float = 0.0
    """Seconds left before an ejected endpoint is re-admitted."""


class Endpoint:
    """One base URL of a service, with its load, failure streak and metrics."""

    __slots__ = (
        "attempts_total",
        "cooldown_until",
        "ejected_until",
        "ejections",
        "ejections_total",
        "multiplier",
        "outstanding",
        "readmitted_at",
        "state_gauge",
        "streak",
        "succeeded",
        "url",
    )

    def __init__(
        self, url: str, metrics: ProxyMetrics, service: str, *, count_attempts: bool
    ) -> None:
        self.url = url
        self.outstanding = 0
        # Consecutive failures since the last success or re-admission.
        self.streak = 0
        # True when the latest attempt succeeded: evidence that it serves.
        self.succeeded = False
        self.ejected_until: float | None = None
        # Clock time before which its Retry-After allows no attempt, or 0.0.
        self.cooldown_until = 0.0
        self.ejections = 0
        # Factor of the base ejection time for the next ejection, before decay.
        self.multiplier = 0
        self.readmitted_at: float | None = None
        self.attempts_total: Counter | None = (
            metrics.endpoint_attempts.labels(service, url) if count_attempts else None
        )
        self.ejections_total: Counter = metrics.endpoint_ejections.labels(service, url)
        self.state_gauge: Gauge = metrics.endpoint_state.labels(service, url)
        self.state_gauge.set(_GAUGE_VALUES[ACTIVE])

    def __repr__(self) -> str:
        return f"Endpoint(url={self.url!r}, ejected={self.ejected_until is not None})"

    def resolve(self, path: str) -> yarl.URL:
        """Return the URL of ``path``, an already percent-encoded path, here."""
        return yarl.URL(self.url + path, encoded=True)


class EndpointSet:
    """Spread a service's attempts over its endpoints and eject failing ones.

    ``pick`` chooses the endpoint with the fewest attempts in flight. The scan
    starts one place further at every pick, so that ties, the common case at
    low load, go round-robin. A retry avoids the endpoints that earlier
    attempts of its call used, while another one is active (Envoy's
    previous-hosts retry predicate). Every pick avoids an endpoint whose
    Retry-After has not yet passed in the same way.

    An endpoint with ``consecutive_failures`` failed attempts in a row is
    ejected for ``base_ejection_time`` times the number of its ejections, at
    most ``max_ejection_time``. That factor drops by one for each
    ``base_ejection_time`` the endpoint stays active. At most
    ``max_ejection_percent`` of the endpoints are ejected at a time, at least
    one and never all (Envoy's outlier detection, without its interval timer).
    Re-admission happens at the first pick, health check or state read after
    the ejection ends.

    Not thread-safe: use one instance from one event loop.
    """

    def __init__(
        self,
        service: str,
        urls: Sequence[str],
        metrics: ProxyMetrics,
        *,
        enabled: bool = True,
        consecutive_failures: int = 5,
        base_ejection_time: float = 30.0,
        max_ejection_time: float = 300.0,
        max_ejection_percent: int = 50,
        clock: Clock = monotonic,
    ) -> None:
        if not urls:
            message = "an endpoint set needs at least one URL"
            raise ValueError(message)
        self.service = service
        # One endpoint takes every attempt, so counting them per endpoint
        # would repeat service_calls_total and service_retries_total.
        count_attempts = len(urls) > 1
        self.endpoints = tuple(
            Endpoint(url, metrics, service, count_attempts=count_attempts)
            for url in urls
        )
        self._enabled = enabled
        self._threshold = consecutive_failures
        self._base_time = base_ejection_time
        self._max_time = max_ejection_time
        allowed = max(1, math.floor(len(urls) * max_ejection_percent / 100))
        self._max_ejected = min(allowed, len(urls) - 1)
        self._ejected = 0
        self._next = 0
        # The latest end of an endpoint's cool-down, 0.0 once all have passed.
        self._cooling_until = 0.0
        self._clock = clock
        self._log = logger.bind(service=service).patch(redact_record)

    @classmethod
    def from_settings(
        cls,
        service: str,
        settings: ServiceSettings,
        metrics: ProxyMetrics,
        *,
        clock: Clock = monotonic,
    ) -> EndpointSet:
        """Build the endpoint set of a service from its ``url`` and outlier settings."""
        return cls(
            service,
            settings.url,
            metrics,
            enabled=settings.outlier_enabled,
            consecutive_failures=settings.outlier_consecutive_failures,
            base_ejection_time=settings.outlier_base_ejection_time,
            max_ejection_time=settings.outlier_max_ejection_time,
            max_ejection_percent=settings.outlier_max_ejection_percent,
            clock=clock,
        )

    @property
    def max_ejected(self) -> int:
        """Maximum number of endpoints ejected at the same time."""
        return self._max_ejected

    def pick(self, previous: Sequence[Endpoint] = ()) -> Endpoint:
        """Choose the endpoint of the next attempt and count it as in flight.

        Every pick must be followed by exactly one ``release``.
        """
        if self._ejected:
            self._readmit_expired()
        # Infinity while no cool-down runs, so that no old one applies.
        now = math.inf
        if self._cooling_until:
            now = self._clock()
            if now >= self._cooling_until:
                self._cooling_until = 0.0
        endpoints = self.endpoints
        count = len(endpoints)
        start = self._next
        self._next = start + 1 if start + 1 < count else 0
        fresh: Endpoint | None = None
        fallback: Endpoint | None = None
        for offset in range(count):
            index = start + offset
            endpoint = endpoints[index - count if index >= count else index]
            if endpoint.ejected_until is not None:
                continue
            if fallback is None or endpoint.outstanding < fallback.outstanding:
                fallback = endpoint
            if endpoint in previous or endpoint.cooldown_until > now:
                continue
            if fresh is None or endpoint.outstanding < fresh.outstanding:
                fresh = endpoint
        chosen = fresh or fallback
        if chosen is None:  # pragma: no cover - at least one endpoint stays active
            message = f"every endpoint of {self.service} is ejected"
            raise AssertionError(message)
        chosen.outstanding += 1
        if chosen.attempts_total is not None:
            chosen.attempts_total.inc()
        return chosen

    def release(self, endpoint: Endpoint) -> None:
        """Count one attempt of ``endpoint`` as no longer in flight."""
        endpoint.outstanding -= 1

    def cool_down(self, endpoint: Endpoint, seconds: float) -> float:
        """Keep attempts off ``endpoint`` for ``seconds``, after its Retry-After.

        Returns the seconds for which every active endpoint is held back, which
        is the wait of the service as a whole, or 0.0 while one is free.
        """
        now = self._clock()
        endpoint.cooldown_until = max(endpoint.cooldown_until, now + seconds)
        self._cooling_until = max(self._cooling_until, endpoint.cooldown_until)
        shortest = min(
            other.cooldown_until
            for other in self.endpoints
            if other.ejected_until is None or other is endpoint
        )
        return max(0.0, shortest - now)

    def record_success(self, endpoint: Endpoint) -> None:
        """Record that ``endpoint`` responded, which ends its failure streak."""
        endpoint.streak = 0
        endpoint.succeeded = True

    def record_error(self, endpoint: Endpoint, exc: ServiceProxyError) -> None:
        """Record an attempt of ``endpoint`` that raised ``exc``.

        A response below 500 counts as a success. Deadline expiries and a
        closed session are on the caller's side and count as neither.
        """
        if is_endpoint_failure(exc):
            self.record_failure(endpoint)
        elif not isinstance(exc, ServiceDeadlineError | ServiceSessionClosedError):
            self.record_success(endpoint)

    def record_failure(self, endpoint: Endpoint) -> None:
        """Record a failed attempt of ``endpoint`` and eject it after a streak."""
        endpoint.succeeded = False
        if endpoint.ejected_until is not None:
            self._readmit_expired()
            if endpoint.ejected_until is not None:
                # An attempt that started before the ejection.
                return
        endpoint.streak += 1
        if self._enabled and endpoint.streak >= self._threshold:
            self._try_eject(endpoint)

    def absorbs_failure(self, endpoint: Endpoint) -> bool:
        """Tell whether a failure of ``endpoint`` is its own, not the service's.

        It is when the endpoint is ejected, or when another active endpoint
        succeeded at its latest attempt, so that the service still responds.
        The circuit breaker ignores such failures.
        """
        if endpoint.ejected_until is not None:
            return True
        return any(
            other.succeeded and other.ejected_until is None
            for other in self.endpoints
            if other is not endpoint
        )

    def states(self) -> list[EndpointState]:
        """Return the state of every endpoint, in the order of the settings."""
        self._readmit_expired()
        now = self._clock()
        return [
            EndpointState(
                url=endpoint.url,
                state=ACTIVE if endpoint.ejected_until is None else EJECTED,
                outstanding=endpoint.outstanding,
                consecutive_failures=endpoint.streak,
                ejections=endpoint.ejections,
                ejected_for=(
                    0.0
                    if endpoint.ejected_until is None
                    else max(0.0, endpoint.ejected_until - now)
                ),
            )
            for endpoint in self.endpoints
        ]

    def _try_eject(self, endpoint: Endpoint) -> None:
        self._readmit_expired()
        if self._ejected >= self._max_ejected:
            if endpoint.streak == self._threshold:
                self._log_ejection_capped(endpoint)
            return

        now = self._clock()
        if endpoint.readmitted_at is not None:
            # Each base ejection time spent active takes one step off the factor.
            active = now - endpoint.readmitted_at
            endpoint.multiplier = max(
                0, endpoint.multiplier - math.floor(active / self._base_time)
            )
        endpoint.multiplier += 1
        duration = min(self._base_time * endpoint.multiplier, self._max_time)

        endpoint.ejected_until = now + duration
        endpoint.ejections += 1
        self._ejected += 1
        endpoint.ejections_total.inc()
        endpoint.state_gauge.set(_GAUGE_VALUES[EJECTED])
        self._log.warning(
            "endpoint {endpoint} ejected for {duration:g} s after {failures} "
            "consecutive failures",
            endpoint=endpoint.url,
            duration=duration,
            failures=endpoint.streak,
        )

    def _log_ejection_capped(self, endpoint: Endpoint) -> None:
        # Logged once per failure streak, at the failure that reached the threshold.
        self._log.warning(
            "endpoint {endpoint} failed {failures} times in a row but stays "
            "active: {ejected} of {total} endpoints are already ejected, the maximum",
            endpoint=endpoint.url,
            failures=endpoint.streak,
            ejected=self._ejected,
            total=len(self.endpoints),
        )

    def _readmit_expired(self) -> None:
        if not self._ejected:
            return
        now = self._clock()
        for endpoint in self.endpoints:
            until = endpoint.ejected_until
            if until is None or until > now:
                continue
            endpoint.ejected_until = None
            endpoint.readmitted_at = until
            endpoint.streak = 0
            endpoint.succeeded = False
            self._ejected -= 1
            endpoint.state_gauge.set(_GAUGE_VALUES[ACTIVE])
            self._log.info("endpoint {endpoint} re-admitted", endpoint=endpoint.url)


def is_endpoint_failure(exc: ServiceProxyError) -> bool:
    """Tell whether an attempt's error counts against the endpoint it went to.

    Connection errors, timeouts, cut bodies, invalid HTTP and 5xx statuses
    count. A caller's deadline and a closed session do not.
    """
    if isinstance(exc, ServiceServerError):
        return True
    return isinstance(exc, ServiceRequestError) and not isinstance(
        exc, ServiceDeadlineError | ServiceSessionClosedError
    )
