"""Service proxies: typed, retrying HTTP clients of other services."""

from app.proxies.base import IDEMPOTENCY_KEY_HEADER, BaseServiceProxy, RequestOptions
from app.proxies.errors import (
    ErrorKind,
    ServiceClientError,
    ServiceConnectionError,
    ServiceDecodeError,
    ServiceIncompleteBodyError,
    ServiceProxyError,
    ServiceRedirectError,
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
    "ErrorKind",
    "InterviewServiceProxy",
    "RequestOptions",
    "ServiceClientError",
    "ServiceConnectionError",
    "ServiceDecodeError",
    "ServiceIncompleteBodyError",
    "ServiceProxyError",
    "ServiceRedirectError",
    "ServiceRequestError",
    "ServiceResponseError",
    "ServiceServerError",
    "ServiceSessionClosedError",
    "ServiceTimeoutError",
    "UserServiceProxy",
]
