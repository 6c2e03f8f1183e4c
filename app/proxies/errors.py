"""Errors raised by the service proxies.

Every failure of a proxy call reaches the caller as one of these::

    ServiceProxyError            service, method, path, status_code, details
    ├── ServiceRequestError      no usable response arrived
    │   ├── ServiceSessionClosedError  the shared client session is closed
    │   ├── ServiceConnectionError   the connection failed or broke
    │   ├── ServiceTimeoutError      an attempt timed out; also a TimeoutError
    │   │   └── ServiceDeadlineError     the call's overall deadline passed
    │   ├── ServiceIncompleteBodyError  the body ended before its declared length
    │   └── ServiceProtocolError     the response is not valid HTTP
    ├── ServiceRejectedError     the proxy refused to send: nothing reached the network
    │   ├── CircuitOpenError         the service's circuit breaker is open
    │   ├── BulkheadFullError        too many calls in flight and waiting
    │   └── ServiceCooldownError     the service asked callers to wait (Retry-After)
    ├── ServiceResponseError     status >= 300; details hold the decoded error body
    │   ├── ServiceRedirectError 3xx: redirects are not followed
    │   ├── ServiceClientError   4xx: never retried
    │   └── ServiceServerError   5xx: retried when the call is safe to repeat
    └── ServiceDecodeError       a 2xx body that is not the JSON or schema expected,
                                 or one larger than the service's size limit

``ValueError`` and ``TypeError`` mark programming errors, such as an empty path
parameter or an invalid setting, and stay outside this tree.
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = [
    "BulkheadFullError",
    "CircuitOpenError",
    "ErrorKind",
    "ServiceClientError",
    "ServiceConnectionError",
    "ServiceCooldownError",
    "ServiceDeadlineError",
    "ServiceDecodeError",
    "ServiceIncompleteBodyError",
    "ServiceProtocolError",
    "ServiceProxyError",
    "ServiceRedirectError",
    "ServiceRejectedError",
    "ServiceRequestError",
    "ServiceResponseError",
    "ServiceServerError",
    "ServiceSessionClosedError",
    "ServiceTimeoutError",
]


class ErrorKind(enum.StrEnum):
    """Bounded name of a failure class, usable as a metric label or in JSON."""

    CONNECTION = "connection"
    TIMEOUT = "timeout"
    INCOMPLETE_BODY = "incomplete_body"
    PROTOCOL = "protocol"
    SESSION_CLOSED = "session_closed"
    REDIRECT = "redirect"
    CLIENT_ERROR = "client_error"
    SERVER_ERROR = "server_error"
    DECODE = "decode"
    DEADLINE = "deadline"
    CIRCUIT_OPEN = "circuit_open"
    BULKHEAD_FULL = "bulkhead_full"
    COOLDOWN = "cooldown"


class ServiceProxyError(Exception):
    """A call to another service failed.

    ``status_code`` is the upstream's HTTP status, or None when no usable response
    arrived. ``details`` is the decoded JSON error body, a bounded text excerpt of a
    body that is not JSON, or a short description of a network failure.
    """

    kind: ErrorKind = ErrorKind.CONNECTION
    retryable = False
    # Seconds the upstream asked callers to wait, from a Retry-After header.
    retry_after: float | None = None

    def __init__(
        self,
        service_name: str,
        status_code: int | None,
        details: Any,
        *,
        method: str = "",
        path: str = "",
        attempts: int = 1,
    ) -> None:
        self.service_name = service_name
        self.status_code = status_code
        self.details = details
        self.method = method
        self.path = path
        self.attempts = attempts
        super().__init__(self._summary())

    @property
    def is_network_error(self) -> bool:
        """True when no usable response arrived: connect, reset, timeout, cut body."""
        return isinstance(self, ServiceRequestError)

    @property
    def is_timeout(self) -> bool:
        """True when an attempt ran out of time."""
        return isinstance(self, ServiceTimeoutError)

    def _summary(self) -> str:
        status = "no response" if self.status_code is None else self.status_code
        return (
            f"{self.service_name} {self.method} {self.path} failed "
            f"({self.kind.value}, {status}): {_short(self.details)}"
        )


class ServiceRequestError(ServiceProxyError):
    """No usable response arrived."""


class ServiceSessionClosedError(ServiceRequestError):
    """The call came after the client session was closed, at shutdown."""

    kind = ErrorKind.SESSION_CLOSED


class ServiceConnectionError(ServiceRequestError):
    """The connection could not be opened, or broke before the response ended."""

    kind = ErrorKind.CONNECTION
    retryable = True

    def __init__(
        self,
        service_name: str,
        status_code: int | None,
        details: Any,
        *,
        method: str = "",
        path: str = "",
        request_sent: bool = True,
    ) -> None:
        super().__init__(service_name, status_code, details, method=method, path=path)
        # False when the connection failed before a byte of the request left, so
        # even a non-idempotent call can be repeated safely.
        self.request_sent = request_sent


class ServiceTimeoutError(ServiceRequestError, TimeoutError):
    """An attempt took longer than its timeout."""

    kind = ErrorKind.TIMEOUT
    retryable = True


class ServiceDeadlineError(ServiceTimeoutError):
    """The call's overall deadline passed before it could finish.

    Not retried, and counted against the circuit breaker only as a slow call:
    the time ran out on the caller's side, which alone shows nothing about the
    upstream's health.
    """

    kind = ErrorKind.DEADLINE
    retryable = False
    # Seconds the attempt had waited on the upstream when the deadline cut it;
    # 0.0 when the deadline passed before anything was sent.
    waited: float = 0.0


class ServiceIncompleteBodyError(ServiceRequestError):
    """The response body ended before the length the upstream declared."""

    kind = ErrorKind.INCOMPLETE_BODY
    retryable = True


class ServiceRejectedError(ServiceProxyError):
    """The proxy refused to send the call; nothing reached the network."""


class CircuitOpenError(ServiceRejectedError):
    """The service's circuit breaker is open, so calls fail at once."""

    kind = ErrorKind.CIRCUIT_OPEN


class BulkheadFullError(ServiceRejectedError):
    """The service's bulkhead has no free slot and its queue is full."""

    kind = ErrorKind.BULKHEAD_FULL


class ServiceCooldownError(ServiceRejectedError):
    """The service asked callers to wait longer than the call's deadline allows."""

    kind = ErrorKind.COOLDOWN


class ServiceProtocolError(ServiceRequestError):
    """The upstream sent something that is not valid HTTP.

    Retried like a broken connection, since a proxy or a restarting server in
    between may have garbled one response.
    """

    kind = ErrorKind.PROTOCOL
    retryable = True


class ServiceResponseError(ServiceProxyError):
    """The upstream responded with a status that is not a success."""


class ServiceRedirectError(ServiceResponseError):
    """A redirect (3xx) that the proxy does not follow.

    Redirects are not followed unless ``follow_redirects`` is set, and then only
    to the service's own origin and at most three times.
    """

    kind = ErrorKind.REDIRECT


class ServiceClientError(ServiceResponseError):
    """The upstream rejected the request (4xx); repeating it cannot help."""

    kind = ErrorKind.CLIENT_ERROR


class ServiceServerError(ServiceResponseError):
    """The upstream failed (5xx); a repeat may succeed."""

    kind = ErrorKind.SERVER_ERROR
    retryable = True


class ServiceDecodeError(ServiceProxyError):
    """A successful response whose body cannot be used."""

    kind = ErrorKind.DECODE


def _short(details: Any, limit: int = 200) -> str:
    text = details.get("message", details) if isinstance(details, dict) else details
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "…"
