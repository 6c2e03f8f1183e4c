"""BaseServiceProxy: the request path shared by every service proxy."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypedDict, TypeVar, Unpack, overload

import aiohttp
import tenacity
import yarl
from loguru import logger

from app.metrics import HTTP_METHODS, CallMetrics, ProxyMetrics
from app.proxies import wire
from app.proxies.errors import (
    ServiceConnectionError,
    ServiceProxyError,
    ServiceSessionClosedError,
)
from app.settings import ServiceSettings

__all__ = [
    "IDEMPOTENCY_KEY_HEADER",
    "BaseServiceProxy",
    "RequestOptions",
    "with_idempotency_key",
]

T = TypeVar("T")

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
# Methods that RFC 9110, section 9.2.2, defines as idempotent.
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_DEFAULT_HEADERS = {"Accept": "application/json"}
_JSON_CONTENT_TYPE = {"Content-Type": "application/json"}
# Errors of one attempt that translate_client_error turns into ServiceProxyError.
_CLIENT_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


class RequestOptions(TypedDict, total=False):
    """Options of one call that override the service's settings."""

    timeout: float
    """Seconds one attempt may take, body included."""
    retries: int
    """Attempts after the first one; 0 turns retrying off."""
    headers: Mapping[str, str]
    """Extra request headers."""


@dataclass(frozen=True, slots=True)
class _Request:
    target: wire.CallTarget
    url: yarl.URL
    params: Mapping[str, str] | None
    body: bytes | None
    headers: Mapping[str, str]
    timeout: aiohttp.ClientTimeout
    retries: int
    model: Any | None

    @property
    def idempotent(self) -> bool:
        if self.target.method in _IDEMPOTENT_METHODS:
            return True
        return _has_idempotency_key(self.headers)


class BaseServiceProxy:
    """Call one upstream service over HTTP with timeouts, retries and metrics.

    ``get``, ``post``, ``put``, ``patch`` and ``delete`` return the decoded JSON body
    (None for an empty body or 204), validated into ``model`` when one is given.
    Every failure raises a :class:`~app.proxies.errors.ServiceProxyError`.

    A failed attempt is repeated when its error is retryable (connection failures,
    timeouts, cut bodies, 5xx) and the call is safe to repeat: its method is
    idempotent, it carries an ``Idempotency-Key`` header, or the connection failed
    before the request was sent. Waits grow exponentially from
    ``backoff_initial`` seconds, by ``backoff_multiplier``, up to ``backoff_max``.
    """

    service_name: ClassVar[str] = "service"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: ServiceSettings,
        metrics: ProxyMetrics,
        *,
        service_name: str | None = None,
    ) -> None:
        name = service_name or self.service_name
        self.name = name
        self.settings = settings
        self._session = session
        self._base_url = settings.url
        self._timeout = aiohttp.ClientTimeout(total=settings.timeout)
        self._metrics: dict[str, CallMetrics] = {
            method: metrics.for_call(name, method) for method in HTTP_METHODS
        }
        self._log = logger.bind(service=name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, url={self._base_url!r})"

    @overload
    async def get(
        self,
        path: str,
        *,
        model: type[T],
        params: Mapping[str, str] | None = None,
        **options: Unpack[RequestOptions],
    ) -> T: ...
    @overload
    async def get(
        self,
        path: str,
        *,
        model: None = None,
        params: Mapping[str, str] | None = None,
        **options: Unpack[RequestOptions],
    ) -> Any: ...
    async def get(
        self,
        path: str,
        *,
        model: Any = None,
        params: Mapping[str, str] | None = None,
        **options: Unpack[RequestOptions],
    ) -> Any:
        """Send a GET request."""
        return await self.request("GET", path, model=model, params=params, **options)

    @overload
    async def post(
        self,
        path: str,
        body: Any = None,
        *,
        model: type[T],
        **options: Unpack[RequestOptions],
    ) -> T: ...
    @overload
    async def post(
        self,
        path: str,
        body: Any = None,
        *,
        model: None = None,
        **options: Unpack[RequestOptions],
    ) -> Any: ...
    async def post(
        self,
        path: str,
        body: Any = None,
        *,
        model: Any = None,
        **options: Unpack[RequestOptions],
    ) -> Any:
        """Send a POST request; retried only with an ``Idempotency-Key`` header."""
        return await self.request("POST", path, body=body, model=model, **options)

    @overload
    async def put(
        self,
        path: str,
        body: Any = None,
        *,
        model: type[T],
        **options: Unpack[RequestOptions],
    ) -> T: ...
    @overload
    async def put(
        self,
        path: str,
        body: Any = None,
        *,
        model: None = None,
        **options: Unpack[RequestOptions],
    ) -> Any: ...
    async def put(
        self,
        path: str,
        body: Any = None,
        *,
        model: Any = None,
        **options: Unpack[RequestOptions],
    ) -> Any:
        """Send a PUT request."""
        return await self.request("PUT", path, body=body, model=model, **options)

    @overload
    async def patch(
        self,
        path: str,
        body: Any = None,
        *,
        model: type[T],
        **options: Unpack[RequestOptions],
    ) -> T: ...
    @overload
    async def patch(
        self,
        path: str,
        body: Any = None,
        *,
        model: None = None,
        **options: Unpack[RequestOptions],
    ) -> Any: ...
    async def patch(
        self,
        path: str,
        body: Any = None,
        *,
        model: Any = None,
        **options: Unpack[RequestOptions],
    ) -> Any:
        """Send a PATCH request; retried only with an ``Idempotency-Key`` header."""
        return await self.request("PATCH", path, body=body, model=model, **options)

    @overload
    async def delete(
        self,
        path: str,
        *,
        model: type[T],
        **options: Unpack[RequestOptions],
    ) -> T: ...
    @overload
    async def delete(
        self,
        path: str,
        *,
        model: None = None,
        **options: Unpack[RequestOptions],
    ) -> Any: ...
    async def delete(
        self,
        path: str,
        *,
        model: Any = None,
        **options: Unpack[RequestOptions],
    ) -> Any:
        """Send a DELETE request."""
        return await self.request("DELETE", path, model=model, **options)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        model: Any = None,
        params: Mapping[str, str] | None = None,
        **options: Unpack[RequestOptions],
    ) -> Any:
        """Send one logical call, retried as the class docstring says.

        Raises:
            ServiceProxyError: the call failed; the last attempt's error is raised.
            ValueError: the method or path is invalid.
        """
        request = self._build_request(method, path, body, model, params, options)
        metrics = self._metrics[request.target.method]
        started = time.perf_counter()
        try:
            result = await self._execute(request)
        except ServiceProxyError as exc:
            elapsed_ms = (time.perf_counter() - started) * 1000
            metrics.error.inc()
            metrics.duration.observe(elapsed_ms)
            self._log.error(
                "{method} {path} failed after {attempts} attempt(s) "
                "in {duration_ms:.1f} ms: {kind} {status}",
                method=method,
                path=path,
                attempts=exc.attempts,
                duration_ms=elapsed_ms,
                kind=exc.kind.value,
                status=exc.status_code,
            )
            raise
        elapsed_ms = (time.perf_counter() - started) * 1000
        metrics.success.inc()
        metrics.duration.observe(elapsed_ms)
        return result

    def _build_request(
        self,
        method: str,
        path: str,
        body: Any,
        model: Any,
        params: Mapping[str, str] | None,
        options: RequestOptions,
    ) -> _Request:
        method = method.upper()
        if method not in self._metrics:
            message = f"HTTP method must be one of {', '.join(HTTP_METHODS)}"
            raise ValueError(message)
        if not path.startswith("/") or "?" in path or "#" in path:
            message = (
                f"path must start with '/' and hold no query or fragment, got "
                f"{path!r}; pass query parameters with params="
            )
            raise ValueError(message)
        payload = wire.encode_body(body)
        headers = dict(_DEFAULT_HEADERS)
        if payload is not None:
            headers.update(_JSON_CONTENT_TYPE)
        headers.update(options.get("headers") or {})
        timeout = options.get("timeout")
        retries = options.get("retries", self.settings.retries)
        if retries < 0:
            message = f"retries must be 0 or more, got {retries}"
            raise ValueError(message)
        return _Request(
            target=wire.CallTarget(self.name, method, path),
            url=yarl.URL(self._base_url + path, encoded=True),
            params=params,
            body=payload,
            headers=headers,
            timeout=self._timeout
            if timeout is None
            else aiohttp.ClientTimeout(total=timeout),
            retries=retries,
            model=model,
        )

    async def _execute(self, request: _Request) -> Any:
        # The first attempt runs without a retry controller, so that a call that
        # succeeds at once pays nothing for one; tenacity runs every repeat.
        try:
            return await self._attempt(request, attempt=1)
        except ServiceProxyError as exc:
            if request.retries == 0 or not _may_repeat(exc, request):
                raise
            first_error = exc
        return await self._retry(request, first_error)

    async def _retry(self, request: _Request, first_error: ServiceProxyError) -> Any:
        settings = self.settings
        pending: ServiceProxyError | None = first_error
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(request.retries + 1),
            wait=tenacity.wait_exponential(
                multiplier=settings.backoff_initial,
                exp_base=settings.backoff_multiplier,
                max=settings.backoff_max,
            ),
            retry=tenacity.retry_if_exception(
                lambda exc: (
                    isinstance(exc, ServiceProxyError) and _may_repeat(exc, request)
                )
            ),
            before_sleep=lambda state: self._before_sleep(request, state),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if pending is not None:
                        # Replays the first attempt's error, so that tenacity
                        # counts it and waits before the second attempt.
                        error, pending = pending, None
                        raise error
                    number = attempt.retry_state.attempt_number
                    return await self._attempt(request, attempt=number)
        except ServiceProxyError as exc:
            exc.attempts = retrying.statistics.get("attempt_number", 1)
            raise
        message = "the retry loop ended without a result"  # pragma: no cover
        raise AssertionError(message)  # pragma: no cover

    def _before_sleep(self, request: _Request, state: tenacity.RetryCallState) -> None:
        self._metrics[request.target.method].retries.inc()
        outcome = state.outcome
        cause = outcome.exception() if outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        self._log.warning(
            "{method} {path} attempt {attempt} failed ({cause}); "
            "retrying in {wait:.2f} s",
            method=request.target.method,
            path=request.target.path,
            attempt=state.attempt_number,
            cause=type(cause).__name__,
            kind=getattr(cause, "kind", None),
            wait=wait,
        )

    async def _attempt(self, request: _Request, *, attempt: int) -> Any:
        target = request.target
        session = self._session
        if session.closed:
            details = "the client session is closed; the container was shut down"
            raise ServiceSessionClosedError(
                self.name, None, details, method=target.method, path=target.path
            )
        self._log.debug(
            "{method} {path} attempt {attempt}",
            method=target.method,
            path=target.path,
            attempt=attempt,
        )
        started = time.perf_counter()
        try:
            async with session.request(
                target.method,
                request.url,
                params=request.params,
                data=request.body,
                headers=request.headers,
                timeout=request.timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                body = await wire.read_body(
                    target, response, self.settings.max_body_bytes
                )
        except _CLIENT_ERRORS as exc:
            raise wire.translate_client_error(target, exc) from exc
        except RuntimeError as exc:
            # aiohttp raises RuntimeError when the session closes under a call.
            if not session.closed:
                raise
            raise ServiceSessionClosedError(
                self.name, None, str(exc), method=target.method, path=target.path
            ) from exc
        self._log.debug(
            "{method} {path} -> {status} in {duration_ms:.1f} ms",
            method=target.method,
            path=target.path,
            status=status,
            duration_ms=(time.perf_counter() - started) * 1000,
        )
        if status >= 300:
            raise wire.status_error(target, status, body)
        return wire.decode_body(target, status, body, request.model)


def with_idempotency_key(options: RequestOptions) -> RequestOptions:
    """Return options whose headers carry an ``Idempotency-Key``.

    A key the caller set is kept; otherwise a new random key is added, one per
    logical call, and every attempt of the call sends the same one.
    """
    headers = dict(options.get("headers") or {})
    if not _has_idempotency_key(headers):
        headers[IDEMPOTENCY_KEY_HEADER] = uuid.uuid4().hex
    return {**options, "headers": headers}


def _may_repeat(exc: ServiceProxyError, request: _Request) -> bool:
    """Tell whether a failed attempt may be repeated without a second side effect."""
    if not exc.retryable:
        return False
    if request.idempotent:
        return True
    return isinstance(exc, ServiceConnectionError) and not exc.request_sent


def _has_idempotency_key(headers: Mapping[str, str]) -> bool:
    return any(name.lower() == "idempotency-key" for name in headers)
