"""One attempt's wire steps: path segments, body reads, decoding, error mapping."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import aiohttp
import yarl
from aiohttp.http_exceptions import ContentEncodingError
from pydantic import BaseModel, TypeAdapter, ValidationError

from app.proxies.errors import (
    ServiceClientError,
    ServiceConnectionError,
    ServiceDecodeError,
    ServiceIncompleteBodyError,
    ServiceProtocolError,
    ServiceProxyError,
    ServiceRedirectError,
    ServiceResponseError,
    ServiceServerError,
    ServiceTimeoutError,
)

__all__ = [
    "ERROR_BODY_LIMIT",
    "MAX_SEGMENT_LENGTH",
    "REDIRECT_STATUSES",
    "CallTarget",
    "check_model",
    "decode_body",
    "encode_body",
    "fits_whole",
    "id_text",
    "origin_of",
    "path_segment",
    "read_body",
    "redirect_method",
    "resolve_redirect",
    "status_error",
    "translate_client_error",
]

# Bytes of an error body that are read and kept in ``details``.
ERROR_BODY_LIMIT = 64 * 1024
# Characters of error text kept in ``details`` when the body is not JSON.
ERROR_TEXT_LIMIT = 1000
# Characters accepted in one path parameter; longer ids are a caller's bug.
MAX_SEGMENT_LENGTH = 512
_VALIDATION_ERRORS_SHOWN = 5
# Models whose JSON validator is kept. Models are usually types named in
# code, so this bound matters for models made at run time, such as list[...].
_VALIDATORS_KEPT = 256
_json_validators: dict[Any, Callable[[bytes], Any]] = {}
# Statuses whose Location a proxy with follow_redirects set follows.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(slots=True)
class CallTarget:
    """Service, method and path of a call, for error messages.

    Treat it as read-only. The call engine's CallRequest extends it and is
    built for every call, and a frozen dataclass or a NamedTuple costs more
    than twice as much to build.
    """

    service: str
    method: str
    path: str


def id_text(value: object) -> str:
    """Return the text of an id as an exact str.

    ``str()`` returns whatever ``__str__`` returns, which may be a str subclass
    that formats as other text. The exact str made here cannot.
    """
    if type(value) is str:
        return value
    return str.__str__(str(value))


def path_segment(value: str | int) -> str:
    """Percent-encode one path parameter so that it stays one path segment.

    Every byte outside RFC 3986's unreserved set is encoded, "/" and "%" included,
    so ``../admin`` becomes ``..%2Fadmin`` and ``%2e%2e`` becomes ``%252e%252e``:
    the server decodes the segment back to the literal id, never to a dot segment.

    Raises:
        ValueError: the value is empty, ``.`` or ``..``, too long, or contains
            a lone surrogate, which has no UTF-8 encoding.
    """
    text = id_text(value)
    if text.isalnum() and text.isascii() and len(text) <= MAX_SEGMENT_LENGTH:
        # Letters and digits only: nothing to encode.
        return text
    if text in {"", ".", ".."}:
        message = f"path parameter must be a non-empty id, got {text!r}"
        raise ValueError(message)
    if len(text) > MAX_SEGMENT_LENGTH:
        message = (
            f"path parameter has {len(text)} characters, "
            f"at most {MAX_SEGMENT_LENGTH} are accepted"
        )
        raise ValueError(message)
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        message = "path parameter must be valid Unicode text without lone surrogates"
        raise ValueError(message) from None
    return quote(encoded, safe="")


def encode_body(body: Any) -> bytes | None:
    """Serialize a request body to JSON bytes; models use their camelCase aliases."""
    if body is None:
        return None
    if isinstance(body, BaseModel):
        return body.model_dump_json(by_alias=True, exclude_unset=True).encode()
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    except ValueError as exc:
        message = f"request body cannot be sent as JSON: {exc}"
        raise ValueError(message) from None


async def read_body(
    target: CallTarget, response: aiohttp.ClientResponse, limit: int
) -> bytes:
    """Read a body of at most ``limit`` bytes, or raise without reading it whole.

    A redirect or error response (status >= 300) keeps only its first
    ERROR_BODY_LIMIT bytes instead of failing, so that the status still reaches
    the caller.

    Raises:
        ServiceDecodeError: the body is larger than ``limit``.
    """
    if response.status >= 300:
        return await _read_prefix(response.content, min(limit, ERROR_BODY_LIMIT))
    if fits_whole(response, limit):
        return await response.read()
    length = response.content_length
    if (
        length is None
        or response.headers.get("Content-Encoding", "identity") != "identity"
    ):
        body = await _read_prefix(response.content, limit + 1)
        if len(body) <= limit:
            return body
        details = f"response body exceeds the limit of {limit} bytes"
    else:
        details = f"response body of {length} bytes exceeds the limit of {limit} bytes"
    raise ServiceDecodeError(
        target.service,
        response.status,
        details,
        method=target.method,
        path=target.path,
    )


def fits_whole(response: aiohttp.ClientResponse, limit: int) -> bool:
    """Tell whether a 2xx body may be read at once: it declares at most ``limit`` bytes.

    Content-Length counts compressed bytes; a small gzip body can inflate to
    gigabytes, so an encoded body never fits and is measured as it is decoded.
    """
    if response.status >= 300:
        return False
    headers = response.headers
    length = headers.get("Content-Length")
    return (
        length is not None
        and length.isdigit()
        and int(length) <= limit
        and headers.get("Content-Encoding", "identity") == "identity"
    )


async def _read_prefix(content: aiohttp.StreamReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def decode_body(target: CallTarget, status: int, body: bytes, model: Any | None) -> Any:
    """Decode a 2xx body as JSON, validated into ``model`` when one is given."""
    if status == 204 or not body:
        return _validate(target, status, None, model) if model is not None else None
    if model is not None:
        try:
            validator = _json_validators.get(model) or _json_validator(model)
            return validator(body)
        except ValidationError as exc:
            raise _schema_error(target, status, exc) from exc
        except RecursionError as exc:
            details = "response body nests too deeply to decode"
            raise ServiceDecodeError(
                target.service, status, details, method=target.method, path=target.path
            ) from exc
    try:
        return _loads(body)
    except (ValueError, RecursionError) as exc:
        details = f"response body is not valid JSON: {_snippet(body)}"
        raise ServiceDecodeError(
            target.service, status, details, method=target.method, path=target.path
        ) from exc


def _loads(body: bytes) -> Any:
    """Parse strict JSON: NaN and Infinity, which json.loads accepts, are invalid."""
    return json.loads(body, parse_constant=_reject_constant)


def _reject_constant(name: str) -> Any:
    message = f"{name} is not valid JSON"
    raise ValueError(message)


def _validate(target: CallTarget, status: int, value: Any, model: Any) -> Any:
    try:
        return _adapter(model).validate_python(value)
    except ValidationError as exc:
        raise _schema_error(target, status, exc) from exc


@lru_cache(maxsize=256)
def _adapter(model: Any) -> TypeAdapter[Any]:
    return TypeAdapter(model)


def _json_validator(model: Any) -> Callable[[bytes], Any]:
    """Return the schema validator's own validate_json of ``model``.

    TypeAdapter.validate_json only passes its default options on to it, at the
    cost of one more Python call on every decoded body. The validators are
    kept in a plain dict, cleared when it reaches ``_VALIDATORS_KEPT``, because
    lru_cache builds a key tuple on every call.
    """
    validator = _json_validators.get(model)
    if validator is None:
        validator = _adapter(model).validator.validate_json
        if len(_json_validators) >= _VALIDATORS_KEPT:
            _json_validators.clear()
        _json_validators[model] = validator
    return validator


def check_model(model: Any) -> None:
    """Raise TypeError before sending when ``model`` cannot validate a body."""
    try:
        _adapter(model)
    except Exception as exc:  # pydantic raises several error types here
        message = f"model= must be a type pydantic can validate, got {model!r}: {exc}"
        raise TypeError(message) from None


def _schema_error(
    target: CallTarget, status: int, exc: ValidationError
) -> ServiceDecodeError:
    # The input values are left out: they may hold personal data.
    problems = [
        f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
        for error in exc.errors(include_input=False)[:_VALIDATION_ERRORS_SHOWN]
    ]
    details = {
        "message": "response body does not match the expected schema",
        "errors": problems,
        "errorCount": exc.error_count(),
    }
    return ServiceDecodeError(
        target.service, status, details, method=target.method, path=target.path
    )


def status_error(
    target: CallTarget,
    status: int,
    body: bytes,
    secret: str | None = None,
) -> ServiceResponseError:
    """Build the error for a response with a status of 300 or more.

    ``secret``, the service's token, is replaced in the decoded details, should
    the upstream echo it, in whatever JSON escaping it used.
    """
    details = _error_details(body)
    if secret:
        details = _scrub(details, secret)
    error_class: type[ServiceResponseError]
    if status >= 500:
        error_class = ServiceServerError
    elif status >= 400:
        error_class = ServiceClientError
    else:
        error_class = ServiceRedirectError
    return error_class(
        target.service, status, details, method=target.method, path=target.path
    )


def _scrub(value: Any, secret: str) -> Any:
    if isinstance(value, str):
        return value.replace(secret, "[REDACTED]")
    if isinstance(value, dict):
        return {key: _scrub(item, secret) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, secret) for item in value]
    return value


def _error_details(body: bytes) -> Any:
    if not body:
        return None
    try:
        decoded = _loads(body)
    except (ValueError, RecursionError):
        return _snippet(body)
    return decoded if isinstance(decoded, dict | list) else _snippet(body)


def _snippet(body: bytes) -> str:
    text = body[: ERROR_TEXT_LIMIT * 4].decode("utf-8", errors="replace")
    text = " ".join(text.split())
    return text if len(text) <= ERROR_TEXT_LIMIT else text[:ERROR_TEXT_LIMIT] + "…"


def origin_of(url: yarl.URL) -> str:
    """Return ``scheme://host:port`` of an absolute URL, the port always given."""
    return f"{url.scheme}://{url.host}:{url.port}"


def resolve_redirect(
    target: CallTarget, current: yarl.URL, status: int, location: str, origin: str
) -> yarl.URL:
    """Resolve a Location header against the current URL and check its origin.

    Relative and absolute Locations are accepted when they lead to ``origin``,
    the service's own scheme, host and port. Credentials and fragments of the
    Location are dropped.

    Raises:
        ServiceRedirectError: the Location is invalid or leads to another origin;
            the message names the rejected origin, never its path or query.
    """
    try:
        url = current.join(yarl.URL(location))
    except (ValueError, TypeError):
        details = "redirect with an invalid Location header"
        raise _redirect_error(target, status, details) from None
    if url.host is None or origin_of(url) != origin:
        rejected = "a URL without a host" if url.host is None else origin_of(url)
        details = (
            f"redirect to {rejected} rejected: only redirects to {origin} are followed"
        )
        raise _redirect_error(target, status, details)
    return url.with_user(None).with_fragment(None)


def redirect_method(status: int, method: str) -> str:
    """Return the method of the request that follows a redirect.

    303 turns every method but HEAD into GET, and 301 and 302 turn POST into GET,
    as browsers do (RFC 9110, section 15.4); 307 and 308 keep the method.
    """
    if status == 303 and method != "HEAD":
        return "GET"
    if status in {301, 302} and method == "POST":
        return "GET"
    return method


def _redirect_error(
    target: CallTarget, status: int, details: str
) -> ServiceRedirectError:
    return ServiceRedirectError(
        target.service, status, details, method=target.method, path=target.path
    )


def translate_client_error(
    target: CallTarget, exc: BaseException, status: int | None = None
) -> ServiceProxyError:
    """Map an aiohttp, socket or timeout error of one attempt to the closest error.

    ``status`` is the response's status when the error came after its headers.
    """
    service, method, path = target.service, target.method, target.path
    if isinstance(exc, TimeoutError):
        details = "the attempt timed out"
        return ServiceTimeoutError(service, None, details, method=method, path=path)
    if isinstance(exc, aiohttp.ClientPayloadError) and isinstance(
        exc.__cause__, ContentEncodingError
    ):
        # aiohttp reports a body that fails its Content-Encoding as a payload
        # error; the body arrived whole, so repeating the call cannot help.
        if status is not None and status >= 300:
            # The status is what matters for a redirect or an error response.
            return status_error(target, status, b"")
        details = f"response body does not match its Content-Encoding: {_describe(exc)}"
        return ServiceDecodeError(service, status, details, method=method, path=path)
    if isinstance(exc, aiohttp.ClientPayloadError):
        details = f"response body was incomplete: {_describe(exc)}"
        return ServiceIncompleteBodyError(
            service, None, details, method=method, path=path
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        details = f"could not connect: {_describe(exc)}"
        error = ServiceConnectionError(
            service, None, details, method=method, path=path, request_sent=False
        )
        if isinstance(exc, aiohttp.ClientSSLError):
            # A certificate or TLS setup failure repeats on every attempt.
            error.retryable = False
        return error
    if isinstance(exc, aiohttp.ClientResponseError):
        # Raised for a response that is not valid HTTP: a bad status line,
        # header or chunk, or a 1xx status the client cannot use.
        details = f"response is not valid HTTP: {_describe(exc)}"
        return ServiceProtocolError(service, None, details, method=method, path=path)
    details = f"connection failed: {_describe(exc)}"
    return ServiceConnectionError(service, None, details, method=method, path=path)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:ERROR_TEXT_LIMIT]
