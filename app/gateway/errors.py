"""JSON error responses of the gateway."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from loguru import logger

from app.correlation import REQUEST_ID_HEADER, request_id_scope, usable_request_id
from app.proxies.errors import (
    ServiceClientError,
    ServiceConnectionError,
    ServiceProxyError,
    ServiceRejectedError,
    ServiceServerError,
    ServiceSessionClosedError,
    ServiceTimeoutError,
)
from app.redaction import redact_record

__all__ = [
    "error_middleware",
    "json_error",
    "request_id_middleware",
    "upstream_error_response",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_log = logger.patch(redact_record)


def json_error(status: int, code: str, message: str, **fields: str) -> web.Response:
    """Build a JSON error response: ``{"error": code, "message": ..., **fields}``."""
    body = {"error": code, "message": message, **fields}
    return web.json_response(body, status=status)


def upstream_error_response(exc: ServiceProxyError) -> web.Response:
    """Map a failed upstream call to the gateway's status and JSON body.

    404 from an upstream stays 404. An unreachable upstream, an open circuit, a
    full bulkhead or a cool-down gives 503; a timeout or a spent deadline 504; any
    other upstream failure 502. The upstream's raw body is never passed on.
    """
    service = exc.service_name
    fields = {"service": service, "kind": exc.kind.value}
    if isinstance(exc, ServiceClientError) and exc.status_code == 404:
        return json_error(404, "not_found", f"not found in {service}", **fields)
    if isinstance(exc, ServiceTimeoutError):
        message = f"{service} did not respond in time"
        return json_error(504, "upstream_timeout", message, **fields)
    # A cut body or invalid HTTP came from a reachable upstream: that is 502.
    unavailable = isinstance(
        exc, ServiceConnectionError | ServiceSessionClosedError | ServiceRejectedError
    ) or (isinstance(exc, ServiceServerError) and exc.status_code == 503)
    if unavailable:
        message = f"{service} is unavailable"
        return json_error(503, "upstream_unavailable", message, **fields)
    message = f"{service} returned an unusable response"
    return json_error(502, "upstream_error", message, **fields)


@web.middleware
async def request_id_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Tag the request with its X-Request-Id, or a new one, and echo it back.

    The id reaches every log line of the request and every upstream call it
    makes. A caller's id that is too long or contains unusual characters is
    replaced, so that it cannot forge log fields or headers.
    """
    request_id = usable_request_id(request.headers.get(REQUEST_ID_HEADER))
    with request_id_scope(request_id):
        response = await handler(request)
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


@web.middleware
async def error_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Turn every error into a JSON response, never a stack trace."""
    try:
        return await handler(request)
    except ServiceProxyError as exc:
        return upstream_error_response(exc)
    except TimeoutError:
        # The handler's own bound on the dashboard deadline ran out.
        return json_error(504, "deadline_exceeded", "the request deadline passed")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        response = json_error(exc.status, code, exc.reason)
        if "Allow" in exc.headers:
            # RFC 9110, section 15.5.6: a 405 lists the methods the route allows.
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        # Logged with its traceback here, where it is handled, and nowhere else.
        _log.exception(
            "unhandled error in {method} {path}",
            method=request.method,
            path=request.path,
        )
        return json_error(500, "internal_error", "internal server error")
