"""BaseServiceProxy: the request path shared by every service proxy."""

from __future__ import annotations

import asyncio
import math
import re
import time
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypedDict, TypeVar, Unpack, cast, overload

import aiohttp
import yarl
from loguru import logger

from app.correlation import REQUEST_ID_HEADER
from app.metrics import HTTP_METHODS, ProxyMetrics
from app.proxies import wire
from app.proxies.endpoints import EJECTED, EndpointState
from app.proxies.engine import CallEngine, CallRequest
from app.proxies.errors import (
    ServiceClientError,
    ServiceDeadlineError,
    ServiceDecodeError,
    ServiceProxyError,
    ServiceRedirectError,
)
from app.proxies.staleness import StaleRead, note_stale_read
from app.redaction import redact_record
from app.resilience.cache import CacheResult, ReadCache, ReadThroughCache
from app.resilience.deadline import current_deadline, deadline_scope
from app.resilience.redis_cache import RedisReadCache
from app.resilience.redis_store import RedisCacheStore
from app.settings import ServiceSettings

__all__ = [
    "IDEMPOTENCY_KEY_HEADER",
    "MAX_RETRIES",
    "BaseServiceProxy",
    "EndpointHealth",
    "HealthReport",
    "RequestOptions",
    "with_idempotency_key",
]

T = TypeVar("T")

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
MAX_RETRIES = 10
_DEFAULT_HEADERS = {"Accept": "application/json"}
# Headers that the proxy sets unless the caller does, by lower-case name. A
# caller's header is renamed to this spelling, so that it replaces the proxy's
# value rather than going out next to it, whatever its letter case.
_OWN_HEADERS = {
    name.lower(): name for name in ("Accept", "Content-Type", REQUEST_ID_HEADER)
}
# Paths for which a proxy keeps the parsed URL, and ids for which it keeps the
# request of a read without options, counted over all its reads. Each cache is
# cleared when it is full.
_PATH_CACHE_SIZE = 1024
# A path of RFC 3986 section 3.3 characters: unreserved, sub-delims, ":", "@",
# "/" and percent-encodings. Spaces, CR, LF and raw non-ASCII are not allowed.
_PATH = re.compile(r"/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*")


class RequestOptions(TypedDict, total=False):
    """Options of one call that override the service's settings."""

    timeout: float
    """Seconds one attempt may take, body included."""
    retries: int
    """Attempts after the first one; 0 turns retrying off."""
    headers: Mapping[str, str]
    """Extra request headers."""
    deadline: float
    """Seconds the whole call may take, retries and waits included."""


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """The result of one probe of an endpoint's health path."""

    url: str
    state: str
    """``active`` or ``ejected`` by outlier detection."""
    reachable: bool
    status_code: int | None
    latency_ms: float
    error: str | None

    @property
    def healthy(self) -> bool:
        """True when the endpoint returned a 2xx status and takes calls."""
        return self.reachable and self.state != EJECTED


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The result of one probe of a service's health path on every endpoint.

    ``reachable`` is True when at least one endpoint is healthy, which means
    that it returned a 2xx status and is not ejected. ``status_code``,
    ``latency_ms`` and ``error`` are those of the first healthy endpoint, or of
    the first endpoint when none is.
    """

    service: str
    reachable: bool
    status_code: int | None
    latency_ms: float
    circuit: str
    error: str | None
    endpoints: tuple[EndpointHealth, ...] = ()


class BaseServiceProxy:
    """Call one upstream service over HTTP with timeouts, retries and metrics.

    ``get``, ``post``, ``put``, ``patch`` and ``delete`` return the decoded JSON body
    (None for an empty body or 204), validated into ``model`` when one is given.
    Every failure raises a :class:`~app.proxies.errors.ServiceProxyError`.

    A failed attempt is repeated when its error is retryable: a connection failure,
    a timeout, a cut body or a 5xx. The call must also be safe to repeat, because
    its method is idempotent, it carries an ``Idempotency-Key`` header, or the
    connection failed before the request was sent. Waits grow exponentially from
    ``backoff_initial`` seconds, by ``backoff_multiplier``, up to ``backoff_max``,
    with jitter, and never shorter than a Retry-After. Every call ends by its
    deadline; the circuit breaker, bulkhead and retry budget of the service can
    reject an attempt before it is sent. See :class:`~app.proxies.engine.CallEngine`.

    Reads named in the ``cache_ttl`` setting are cached in this process, or in
    Redis through ``cache_store`` so that every instance shares them.
    """

    service_name: ClassVar[str] = "service"
    # Read methods whose results the service's cache_ttl setting may cache.
    cacheable_reads: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: ServiceSettings,
        metrics: ProxyMetrics,
        *,
        service_name: str | None = None,
        cache_store: RedisCacheStore | None = None,
    ) -> None:
        name = service_name or self.service_name
        unknown = set(settings.cache_ttl) - self.cacheable_reads
        if unknown:
            allowed = ", ".join(sorted(self.cacheable_reads)) or "none"
            message = (
                f"cache_ttl of {name} names {', '.join(sorted(unknown))}, which "
                f"cannot be cached; cacheable reads: {allowed}"
            )
            raise ValueError(message)
        self.name = name
        self.settings = settings
        # The first endpoint's URL. Attempts sent to another endpoint build
        # theirs with Endpoint.resolve.
        self._base_url = settings.url[0]
        # Path -> parsed URL, since a yarl.URL costs more to build than to look up.
        self._urls: dict[str, yarl.URL] = {}
        # (operation, id) -> the request of a typed read without options,
        # looked up before the id is encoded into a path.
        self._reads: dict[tuple[str, str], CallRequest] = {}
        self._engine = CallEngine(name, session, settings, metrics)
        self._cache = _build_read_cache(name, settings, cache_store)
        self._cache_results = {
            result: metrics.cache_requests.labels(name, result)
            for result in ("hit", "miss", "stale")
        }
        self._log = logger.bind(service=name).patch(redact_record)
        # Shared by every call without headers of its own, so never changed.
        self._headers = self._engine.with_auth(_DEFAULT_HEADERS)
        # Settings that every read consults, kept as plain attributes because
        # reading a field of a pydantic model costs several times as much.
        self._ttls = {} if self._cache is None else dict(settings.cache_ttl)
        self._timeout = settings.timeout
        self._retries = settings.retries
        self._deadline_seconds = settings.deadline

    @property
    def engine(self) -> CallEngine:
        """The call engine, with this service's breaker, budget and bulkhead."""
        return self._engine

    def __repr__(self) -> str:
        url = ",".join(self.settings.url)
        return f"{type(self).__name__}(name={self.name!r}, url={url!r})"

    def circuit_state(self) -> str:
        """Return the circuit's state: closed, open, half_open or disabled."""
        breaker = self._engine.breaker
        return "disabled" if breaker is None else breaker.state.name.lower()

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
        request = self._build_request("GET", path, None, model, params, options)
        return await self._engine.call(request)

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
        request = self._build_request("POST", path, body, model, None, options)
        return await self._engine.call(request)

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
        request = self._build_request("PUT", path, body, model, None, options)
        return await self._engine.call(request)

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
        request = self._build_request("PATCH", path, body, model, None, options)
        return await self._engine.call(request)

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
        request = self._build_request("DELETE", path, None, model, None, options)
        return await self._engine.call(request)

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
        """Send one logical call, retried as described in the class docstring.

        Raises:
            ServiceProxyError: the call failed; the last attempt's error is raised.
            ValueError: the method, path or an option is invalid.
        """
        request = self._build_request(method, path, body, model, params, options)
        return await self._engine.call(request)

    async def check_health(self) -> HealthReport:
        """Probe every endpoint's health path once, bypassing retries and the breaker.

        The probes run in parallel, send the service's ``auth_token`` and
        follow no redirect.
        """
        states = self.endpoint_states()
        probes = await asyncio.gather(
            *(self._probe_endpoint(state) for state in states)
        )
        chosen = next((probe for probe in probes if probe.healthy), probes[0])
        return HealthReport(
            service=self.name,
            reachable=chosen.healthy,
            status_code=chosen.status_code,
            latency_ms=chosen.latency_ms,
            circuit=self.circuit_state(),
            error=chosen.error,
            endpoints=tuple(probes),
        )

    def endpoint_states(self) -> list[EndpointState]:
        """Return the state of each endpoint in ``url``, in the settings' order."""
        return self._engine.endpoints.states()

    async def _probe_endpoint(self, endpoint: EndpointState) -> EndpointHealth:
        settings = self.settings
        url = yarl.URL(endpoint.url + settings.health_path, encoded=True)
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            async with self._engine.session.get(
                url,
                headers=self._engine.with_auth(_DEFAULT_HEADERS),
                timeout=aiohttp.ClientTimeout(total=settings.health_timeout),
                allow_redirects=False,
            ) as response:
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError, RuntimeError) as exc:
            error = type(exc).__name__
        elapsed_ms = (time.perf_counter() - started) * 1000
        return EndpointHealth(
            url=endpoint.url,
            state=endpoint.state,
            reachable=status is not None and 200 <= status < 300,
            status_code=status,
            latency_ms=round(elapsed_ms, 1),
            error=error,
        )

    def _read_one(
        self,
        operation: str,
        key: str,
        template: str,
        model: type[T],
        options: RequestOptions,
    ) -> Awaitable[T]:
        """Start the GET of the typed read ``operation`` of the id ``key``.

        The path is ``template`` with the encoded id in place of ``{}``. The
        read goes through the cache when ``operation`` has a time to live, and
        ``key`` is the id that a write to it invalidates. A cache kept in Redis
        validates its entries into ``model``.

        A read without options is the same request every time its id comes
        again, so it is built once and looked up by operation and id, before
        the id is encoded. Without the cache the call's own awaitable is
        returned, so the read costs no extra coroutine.
        """
        if type(key) is not str:
            # The id's text names the request and the cache entry, so that
            # ids equal in Python but written differently, such as 1, 1.0
            # and True, never share either.
            key = wire.id_text(key)
        if not options:
            request = self._reads.get((operation, key))
            if request is not None:
                return self._engine.call(request)
        path = template.format(wire.path_segment(key))
        if self._cache is not None:
            ttl = self._ttls.get(operation)
            if ttl is not None and not _has_call_options(options):
                return self._read_through_cache(
                    self._cache, operation, key, path, ttl, options, model
                )
        request = self._new_request("GET", path, None, model, None, options, operation)
        if not options:
            if len(self._reads) >= _PATH_CACHE_SIZE:
                self._reads.clear()
            self._reads[operation, key] = request
        return self._engine.call(request)

    async def _read_through_cache(
        self,
        cache: ReadThroughCache,
        operation: str,
        key: str,
        path: str,
        ttl: float,
        options: RequestOptions,
        model: type[T],
    ) -> T:
        """Read ``key`` through the cache.

        Concurrent reads of one key share one upstream call, made on the
        deadline of the caller that started it, so that it never runs past the
        request that needed it. Each caller waits at most until its own
        deadline. When the shared call ran out on another caller's shorter
        deadline, a caller with time left starts the call again, once.
        """
        deadline = self._deadline(options.get("deadline"))
        stale_if_error = self.settings.cache_stale_if_error
        for reload in (False, True):
            timer = asyncio.timeout_at(_loop_time_of(deadline))
            try:
                async with timer:
                    # The shared call, if this caller starts it, copies this scope.
                    with deadline_scope(max(0.0, deadline - time.monotonic())):
                        result = await cache.get_or_load(
                            (operation, key),
                            lambda: self._read(operation, path, model, {}),
                            model=model,
                            ttl=ttl,
                            stale_if_error=stale_if_error,
                            group=key,
                            serve_stale=_is_upstream_failure,
                        )
                break
            except TimeoutError as exc:
                if timer.expired():
                    result = self._stale_or_deadline_error(
                        cache, operation, key, path, ttl, exc
                    )
                    break
                left = deadline - time.monotonic()
                if reload or not isinstance(exc, ServiceDeadlineError) or left < 0.05:
                    raise
        self._cache_results[result.source].inc()
        if result.source == "stale":
            note_stale_read(StaleRead(self.name, operation, result.age))
            self._log.warning(
                "{operation} served a stale value {age:.1f} s old",
                operation=operation,
                age=result.age,
            )
        return result.value

    def _stale_or_deadline_error(
        self,
        cache: ReadThroughCache,
        operation: str,
        key: str,
        path: str,
        ttl: float,
        exc: BaseException,
    ) -> CacheResult[Any]:
        """Serve the stale value of a read whose wait hit the deadline, or raise."""
        stale = cache.stale_value(
            (operation, key), ttl=ttl, stale_if_error=self.settings.cache_stale_if_error
        )
        if stale is None:
            details = "the deadline passed while waiting for a shared read"
            raise ServiceDeadlineError(
                self.name, None, details, method="GET", path=path
            ) from exc
        return cast(CacheResult[Any], stale)

    async def _invalidate(self, key: str) -> None:
        """Drop the cached reads of one id after a write to it."""
        if self._cache is not None:
            await self._cache.invalidate(wire.id_text(key))

    def _build_request(
        self,
        method: str,
        path: str,
        body: Any,
        model: Any,
        params: Mapping[str, str] | None,
        options: RequestOptions,
        operation: str | None = None,
    ) -> CallRequest:
        method = method.upper()
        if method not in HTTP_METHODS:
            message = f"HTTP method must be one of {', '.join(HTTP_METHODS)}"
            raise ValueError(message)
        if _PATH.fullmatch(path) is None:
            message = (
                f"path must start with '/' and hold only URL path characters, "
                f"percent-encoded where needed, with no query or fragment; got "
                f"{path[:100]!r}; pass query parameters with params= and encode "
                f"ids with path_segment()"
            )
            raise ValueError(message)
        if "/../" in path + "/" or "/./" in path + "/":
            message = (
                f"path must not contain '.' or '..' segments, got {path[:100]!r}; "
                f"a server that resolves them could leave the service's prefix"
            )
            raise ValueError(message)
        if model is not None:
            wire.check_model(model)
        return self._new_request(
            method,
            path,
            wire.encode_body(body),
            model,
            params,
            options,
            method.lower() if operation is None else operation,
        )

    def _new_request(
        self,
        method: str,
        path: str,
        payload: bytes | None,
        model: Any,
        params: Mapping[str, str] | None,
        options: RequestOptions,
        operation: str,
    ) -> CallRequest:
        """Build a call whose method, path and model are already known to be valid.

        A call without options takes the defaults as they are, without checking
        them again, since it runs for every read.
        """
        headers = self._headers
        if options:
            extra = options.get("headers")
            if extra:
                own = {
                    _OWN_HEADERS.get(name.lower(), name): value
                    for name, value in extra.items()
                }
                headers = self._engine.with_auth({**_DEFAULT_HEADERS, **own})
            timeout = _positive("timeout", options.get("timeout"), self._timeout)
            retries = _retries(options.get("retries"), self._retries)
            budget = _positive(
                "deadline", options.get("deadline"), self._deadline_seconds
            )
        else:
            timeout = self._timeout
            retries = self._retries
            budget = self._deadline_seconds
        if payload is not None:
            headers = dict(headers)
            headers.setdefault("Content-Type", "application/json")
        url = self._urls.get(path)
        if url is None:
            url = yarl.URL(self._base_url + path, encoded=True)
            if len(self._urls) >= _PATH_CACHE_SIZE:
                self._urls.clear()
            self._urls[path] = url
        # Positional, because keyword arguments cost about twice as much to match.
        return CallRequest(
            self.name,
            method,
            path,
            url,
            params,
            payload,
            headers,
            timeout,
            retries,
            budget,
            model,
            operation,
        )

    def _read(
        self,
        operation: str,
        path: str,
        model: type[T],
        options: RequestOptions,
        params: Mapping[str, str] | None = None,
    ) -> Awaitable[T]:
        """Start a GET of a typed method that is never cached.

        ``path`` is built from encoded ids.
        """
        request = self._new_request(
            "GET", path, None, model, params, options, operation
        )
        return self._engine.call(request)

    @overload
    async def _write(
        self,
        operation: str,
        method: str,
        path: str,
        body: Any,
        model: type[T],
        options: RequestOptions,
    ) -> T: ...
    @overload
    async def _write(
        self,
        operation: str,
        method: str,
        path: str,
        body: Any,
        model: None,
        options: RequestOptions,
    ) -> None: ...
    async def _write(
        self,
        operation: str,
        method: str,
        path: str,
        body: Any,
        model: type[T] | None,
        options: RequestOptions,
    ) -> T | None:
        """Send the write of a typed method, named ``operation`` in the metrics."""
        request = self._build_request(
            method, path, body, model, None, options, operation
        )
        result: T | None = await self._engine.call(request)
        return result

    def _deadline(self, seconds: float | None) -> float:
        """Return the earliest of the option, the setting and the context deadline."""
        budget = _positive("deadline", seconds, self._deadline_seconds)
        own = time.monotonic() + budget
        ambient = current_deadline()
        return own if ambient is None else min(own, ambient)


def _build_read_cache(
    name: str, settings: ServiceSettings, store: RedisCacheStore | None
) -> ReadThroughCache | None:
    """Build the read cache of a service, or None when it caches nothing."""
    if not (settings.cache_enabled and settings.cache_ttl):
        return None
    if store is None:
        return ReadCache(max_entries=settings.cache_max_entries)
    return RedisReadCache(
        store,
        service=name,
        max_entry_bytes=settings.max_body_bytes,
        max_entry_age=max(settings.cache_ttl.values()) + settings.cache_stale_if_error,
        # A cached read runs at most this long, unless a caller passes a longer
        # deadline option, and then its value is not stored.
        max_load_seconds=settings.deadline,
    )


def with_idempotency_key(options: RequestOptions) -> RequestOptions:
    """Return options whose headers carry an ``Idempotency-Key``.

    A key the caller set is kept. Otherwise a new random key is added, one per
    logical call, and every attempt of the call sends the same one.
    """
    headers = dict(options.get("headers") or {})
    if not _has_idempotency_key(headers):
        headers[IDEMPOTENCY_KEY_HEADER] = uuid.uuid4().hex
    return {**options, "headers": headers}


def _has_idempotency_key(headers: Mapping[str, str]) -> bool:
    return any(name.lower() == "idempotency-key" for name in headers)


def _positive(name: str, value: float | None, default: float) -> float:
    if value is None:
        return default
    if not (math.isfinite(value) and value > 0):
        message = f"{name} must be a finite number of seconds above 0, got {value}"
        raise ValueError(message)
    return value


def _has_call_options(options: RequestOptions) -> bool:
    """Tell whether a call sets options that could change the upstream's response."""
    return any(name != "deadline" for name in options)


def _retries(value: int | None, default: int) -> int:
    if value is None:
        return default
    if not 0 <= value <= MAX_RETRIES:
        message = f"retries must be 0 to {MAX_RETRIES}, got {value}"
        raise ValueError(message)
    return value


def _loop_time_of(deadline: float | None) -> float | None:
    """Convert a time.monotonic() deadline to the running loop's clock."""
    if deadline is None:
        return None
    return asyncio.get_running_loop().time() + (deadline - time.monotonic())


def _is_upstream_failure(exc: BaseException) -> bool:
    """Tell whether an error is the service's fault, so a stale value may serve."""
    if isinstance(exc, ServiceClientError | ServiceDecodeError | ServiceRedirectError):
        return False
    return isinstance(exc, ServiceProxyError)
