"""Error responses, middlewares and request parsing shared by the sandbox services."""

from __future__ import annotations

import asyncio
import json
import re
from typing import TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from loguru import logger
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)

# At most 18 digits, so every accepted value fits in a signed 64-bit integer.
_INTEGER = re.compile(r"-?[0-9]{1,18}")


class ApiError(Exception):
    """An expected failure that a handler turns into ``{"message": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(
    status: int, message: str, *, headers: dict[str, str] | None = None
) -> web.Response:
    """Build a JSON error response with a one-sentence ``message``."""
    return web.json_response({"message": message}, status=status, headers=headers)


def api_error_response(request: web.Request, exc: ApiError) -> web.Response:
    """Log an expected failure at DEBUG and build its JSON error response."""
    logger.debug(
        "{} {} failed with {}", request.method, _path_template(request), exc.status
    )
    return error_response(exc.status, exc.message)


def health_response(service: str) -> web.Response:
    """Build the ``GET /health`` response of ``service``."""
    return web.json_response({"status": "ok", "service": service})


def make_error_middleware(service: str) -> Middleware:
    """Create a middleware that sends every failure as a JSON error body."""

    @web.middleware
    async def error_middleware(
        request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return api_error_response(request, exc)
        except web.HTTPException as exc:
            return _http_exception_response(request, exc)
        except Exception as exc:
            _log_unexpected(service, request, exc)
            message = "The sandbox failed to handle the request, see its log."
            return error_response(500, message)

    return error_middleware


def make_latency_middleware(latency_ms: float) -> Middleware:
    """Create a middleware that delays every response by ``latency_ms`` ms."""
    if latency_ms < 0:
        message = f"latency_ms must be zero or positive, got {latency_ms}"
        raise ValueError(message)
    delay = latency_ms / 1000

    @web.middleware
    async def latency_middleware(
        request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        if delay > 0:
            await asyncio.sleep(delay)
        return await handler(request)

    return latency_middleware


def _http_exception_response(
    request: web.Request, exc: web.HTTPException
) -> web.Response:
    if exc.status == 404:
        message = f"No route matches {request.method} {request.path}."
    elif isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        message = (
            f"Method {request.method} is not allowed on {request.path}, "
            f"expected one of {allowed}."
        )
    else:
        message = f"The request failed with status {exc.status}: {exc.reason}."
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return error_response(exc.status, message, headers=headers)


def _log_unexpected(service: str, request: web.Request, exc: Exception) -> None:
    path = _path_template(request)
    logger.bind(service=service, method=request.method, path=path).opt(
        exception=exc
    ).error("Unhandled {} in {} {}", type(exc).__name__, request.method, path)


def _path_template(request: web.Request) -> str:
    # The route template ("/users/{id}") keeps ids and query strings out of logs.
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "<no route>"


async def read_json_object(request: web.Request) -> dict[str, object]:
    """Parse the request body as a JSON object, or raise a 422 `ApiError`."""
    raw = await request.read()
    if not raw.strip():
        raise ApiError(422, "The request body is empty, expected a JSON object.")
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except ValueError:
        raise ApiError(422, "The request body is not valid JSON.") from None
    except RecursionError:
        message = "The request body nests too deeply to be parsed."
        raise ApiError(422, message) from None
    if not isinstance(body, dict):
        kind = type(body).__name__
        message = f"The request body must be a JSON object, got {kind}."
        raise ApiError(422, message)
    return body


def _reject_constant(name: str) -> object:
    # json.loads accepts NaN and Infinity by default, which are not JSON.
    message = f"{name} is not a JSON value"
    raise ValueError(message)


async def parse_body(request: web.Request, model: type[ModelT]) -> ModelT:
    """Validate the JSON body against ``model``, or raise a 422 `ApiError`."""
    body = await read_json_object(request)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ApiError(422, describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """Describe the first problem of a pydantic error in one sentence."""
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"]) or "body"
    if error["type"] == "extra_forbidden":
        return f"Unknown field '{field}' in the request body."
    if error["type"] == "missing":
        return f"Missing required field '{field}'."
    return f"Invalid field '{field}': {error['msg']}."


def query_int(
    request: web.Request,
    name: str,
    *,
    default: int,
    minimum: int,
    maximum: int | None = None,
) -> int:
    """Read an integer query parameter within bounds, or raise a 422 `ApiError`."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw):
        message = (
            f"Query parameter '{name}' must be an integer of at most 18 digits, "
            f"got '{raw}'."
        )
        raise ApiError(422, message)

    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        raise ApiError(422, _range_message(name, raw, minimum, maximum))
    return value


def _range_message(name: str, raw: str, minimum: int, maximum: int | None) -> str:
    if maximum is None:
        return f"Query parameter '{name}' must be at least {minimum}, got {raw}."
    return (
        f"Query parameter '{name}' must be between {minimum} and {maximum}, got {raw}."
    )
