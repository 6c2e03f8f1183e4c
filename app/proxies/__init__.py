"""Service proxies: typed, retrying HTTP clients of other services."""

from app.proxies.base import (
    IDEMPOTENCY_KEY_HEADER,
    BaseServiceProxy,
    EndpointHealth,
    HealthReport,
    RequestOptions,
)
from app.proxies.endpoints import EndpointState
from app.proxies.errors import (
    BulkheadFullError,
    CircuitOpenError,
    ErrorKind,
    ServiceClientError,
    ServiceConnectionError,
    ServiceCooldownError,
    ServiceDeadlineError,
    ServiceDecodeError,
    ServiceIncompleteBodyError,
    ServiceProtocolError,
    ServiceProxyError,
    ServiceRedirectError,
    ServiceRejectedError,
    ServiceRequestError,
    ServiceResponseError,
    ServiceServerError,
    ServiceSessionClosedError,
    ServiceTimeoutError,
)
from app.proxies.interview import InterviewServiceProxy
from app.proxies.user import UserServiceProxy

__all__ = [
    "IDEMPOTENCY_KEY_HEADER",
    "BaseServiceProxy",
    "BulkheadFullError",
    "CircuitOpenError",
    "EndpointHealth",
    "EndpointState",
    "ErrorKind",
    "HealthReport",
    "InterviewServiceProxy",
    "RequestOptions",
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
    "UserServiceProxy",
]
