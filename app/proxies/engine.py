"""CallEngine: one service's attempts, retries, deadlines and resilience policies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import tenacity
import yarl
from loguru import logger

from app.correlation import REQUEST_ID_HEADER, current_request_id
from app.metrics import CallMetrics, ProxyMetrics
from app.proxies import wire
from app.proxies.endpoints import Endpoint, EndpointSet
from app.proxies.errors import (
    BulkheadFullError,
    CircuitOpenError,
    ServiceClientError,
    ServiceConnectionError,
    ServiceCooldownError,
    ServiceDeadlineError,
    ServiceProtocolError,
    ServiceProxyError,
    ServiceRedirectError,
    ServiceRejectedError,
    ServiceSessionClosedError,
    ServiceTimeoutError,
)
from app.proxies.stats import CallStats
from app.redaction import REDACTED, redact_record
from app.resilience.breaker import CircuitBreaker, CircuitState
from app.resilience.budget import RetryBudget
from app.resilience.bulkhead import Bulkhead, BulkheadRejectedError
from app.resilience.deadline import DEADLINE_HEADER, current_deadline
from app.resilience.retry_after import Cooldown, parse_retry_after
from app.resilience.timeouts import SharedTimeouts
from app.settings import ServiceSettings
from app.tracing import call_tracer, inject_trace_context

__all__ = ["MAX_REDIRECTS", "CallEngine", "CallRequest"]

# Methods that RFC 9110, section 9.2.2, defines as idempotent.
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Errors of one attempt that translate_client_error turns into ServiceProxyError.
_CLIENT_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)
# Statuses whose Retry-After header the engine honours; 429 only when retryable.
_RETRY_AFTER_STATUSES = frozenset({429, 503})
# Seconds of a call's deadline left when an upstream's 504 still counts as the
# deadline that the call passed on ending.
_DEADLINE_SLACK = 0.005
# aiohttp's request timeout for an attempt that SharedTimeouts times: none.
_NO_TIMEOUT = aiohttp.ClientTimeout()
# Redirects one attempt follows at most when the service's follow_redirects is on.
MAX_REDIRECTS = 3


@dataclass(slots=True)
class CallRequest(wire.CallTarget):
    """One logical call, ready to send as many times as its retries allow.

    It is its own CallTarget, the service, method and path that errors name,
    so that a call builds one object. Nothing in it depends on when a call
    starts, so one request may serve many calls, and proxies keep the
    requests of their reads. Treat it as read-only once built. It is not
    frozen because a frozen dataclass pays one setattr call per field when it
    is built.
    """

    url: yarl.URL
    params: Mapping[str, str] | None
    # Left out of repr(): bodies and headers may carry personal data or secrets.
    body: bytes | None = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)
    timeout: float
    retries: int
    budget: float | None
    """Seconds the call may take from when the engine starts it, or None for
    no limit of its own. An earlier deadline of the caller's context
    (``deadline_scope``) applies in either case."""
    model: Any | None
    operation: str
    """The proxy method that made the call, such as ``get_user``, or the HTTP
    method in lower case for a call of ``get``, ``post`` and the other verbs."""

    @property
    def idempotent(self) -> bool:
        """True when repeating the call cannot apply its effect twice."""
        if self.method in _IDEMPOTENT_METHODS:
            return True
        return any(name.lower() == "idempotency-key" for name in self.headers)


class CallEngine:
    """Send the calls of one service through its deadline, breaker and bulkhead.

    The first attempt runs without a retry controller, so that a call that
    succeeds at once pays nothing for one. Tenacity runs every repeat, and the
    backoff, jitter, Retry-After, retry budget and deadline decide whether and
    when.
    """

    def __init__(
        self,
        name: str,
        session: aiohttp.ClientSession,
        settings: ServiceSettings,
        metrics: ProxyMetrics,
    ) -> None:
        self.name = name
        self.settings = settings
        self._session = session
        self._log = logger.bind(service=name).patch(redact_record)
        self.endpoints = EndpointSet.from_settings(name, settings, metrics)
        # None with one endpoint, which then takes every attempt unpicked.
        self._spread = self.endpoints if len(self.endpoints.endpoints) > 1 else None
        # None unless an OpenTelemetry SDK is installed when the engine is built.
        self._tracer = call_tracer(name, yarl.URL(settings.url[0]))
        self._proxy_metrics = metrics
        # By operation, filled as operations are first called. Operations are
        # the proxy's methods, each with its one HTTP method, and the HTTP verbs
        # in lower case, so the dictionary stays small.
        self._metrics: dict[str, CallMetrics] = {}
        self._rejected = metrics.rejected
        self._skipped = metrics.retries_skipped
        self._backoff = _backoff_strategy(settings)
        # Read on every attempt, and a pydantic model's fields cost more to read.
        self._follow_redirects = settings.follow_redirects
        self._log_successes = settings.log_successes
        self._max_body_bytes = settings.max_body_bytes
        # Times the attempts of the service's own timeout, the common case,
        # with one shared timer instead of one per request.
        self._timeouts = SharedTimeouts()
        token = settings.auth_token
        self._token = None if token is None else token.get_secret_value()
        self.cooldown = Cooldown()
        self.stats = CallStats()
        # Set on every transition rather than read at scrape time, because
        # prometheus_client's multiprocess mode has no set_function.
        self._circuit_gauge = metrics.circuit_state.labels(name)
        self._circuit_gauge.set(CircuitState.CLOSED)
        self._circuit_timer: asyncio.TimerHandle | None = None
        self.breaker = self._build_breaker(settings)
        self.budget = (
            RetryBudget(
                ratio=settings.budget_ratio,
                min_retries=settings.budget_min_retries,
                window=settings.budget_window,
            )
            if settings.budget_enabled
            else None
        )
        self.bulkhead = (
            Bulkhead(
                max_concurrent=settings.bulkhead_max_concurrent,
                max_queue=settings.bulkhead_max_queue,
            )
            if settings.bulkhead_enabled
            else None
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared client session that every attempt uses."""
        return self._session

    def with_auth(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Add the service's bearer token to ``headers``.

        A caller's own Authorization header wins, and without an ``auth_token``
        setting the headers are returned unchanged.
        """
        result = dict(headers)
        token = self.settings.auth_token
        if token is None:
            return result
        if any(name.lower() == "authorization" for name in result):
            return result
        result["Authorization"] = f"Bearer {token.get_secret_value()}"
        return result

    async def call(self, request: CallRequest) -> Any:
        """Send one logical call and record its outcome.

        Raises:
            ServiceProxyError: the call failed; the last attempt's error is raised.
        """
        metrics = self._metrics.get(request.operation)
        if metrics is None:
            metrics = self._metrics[request.operation] = self._proxy_metrics.for_call(
                self.name, request.method, request.operation
            )
        # The time.monotonic() by which the call must end, or None.
        deadline = current_deadline()
        budget = request.budget
        if budget is not None:
            own = time.monotonic() + budget
            if deadline is None or own < deadline:
                deadline = own
        # The endpoints this call's attempts went to, which its retries avoid.
        used: list[Endpoint] | None = None if self._spread is None else []
        stats = self.stats
        stats.in_flight += 1
        tracer = self._tracer
        span = None if tracer is None else tracer.start(request.method, request.url)
        started = time.perf_counter()
        try:
            try:
                result, status = await self._attempt(request, deadline, 1, used)
            except ServiceRejectedError:
                raise
            except ServiceProxyError as exc:
                if request.retries == 0 or not self._may_retry(exc, request):
                    raise
                result, status = await self._retry(request, deadline, exc, used)
        except ServiceProxyError as exc:
            elapsed_ms = (time.perf_counter() - started) * 1000
            metrics.failed(elapsed_ms)
            stats.record(elapsed_ms, True)
            self._log.log(
                _failure_log_level(exc),
                "{method} {path} failed after {attempts} attempt(s) "
                "in {duration_ms:.1f} ms: {outcome}",
                method=request.method,
                path=request.path,
                attempts=exc.attempts,
                duration_ms=elapsed_ms,
                kind=exc.kind.value,
                status=exc.status_code,
                outcome=(
                    exc.kind.value
                    if exc.status_code is None
                    else f"{exc.kind.value} {exc.status_code}"
                ),
            )
            if span is not None:
                span.end(exc)
            raise
        except BaseException as exc:
            if span is not None:
                span.end_interrupted(exc)
            raise
        finally:
            stats.in_flight -= 1
        elapsed_ms = (time.perf_counter() - started) * 1000
        metrics.succeeded(elapsed_ms)
        stats.record(elapsed_ms, False)
        if self._log_successes:
            self._log.debug(
                "{method} {path} -> {status} in {duration_ms:.1f} ms",
                method=request.method,
                path=request.path,
                status=status,
                duration_ms=elapsed_ms,
            )
        if span is not None:
            span.end()
        return result

    async def _retry(
        self,
        request: CallRequest,
        deadline: float | None,
        first_error: ServiceProxyError,
        used: list[Endpoint] | None,
    ) -> tuple[Any, int]:
        pending: ServiceProxyError | None = first_error
        retrying = tenacity.AsyncRetrying(
            stop=lambda state: self._should_stop(request, deadline, state),
            wait=lambda state: self._wait_seconds(state),
            retry=tenacity.retry_if_exception(
                lambda exc: (
                    isinstance(exc, ServiceProxyError)
                    and not isinstance(exc, ServiceRejectedError)
                    and self._may_retry(exc, request)
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
                    return await self._attempt(request, deadline, number, used)
        except ServiceProxyError as exc:
            exc.attempts = retrying.statistics.get("attempt_number", 1)
            raise
        message = "the retry loop ended without a result"  # pragma: no cover
        raise AssertionError(message)  # pragma: no cover

    def _may_retry(self, exc: ServiceProxyError, request: CallRequest) -> bool:
        """Tell whether a failed attempt may be repeated, and count why not."""
        if isinstance(exc, ServiceDeadlineError):
            reason = "deadline"
        elif not (exc.retryable or self._retryable_429(exc)):
            reason = "not_retryable"
        elif request.idempotent or (
            isinstance(exc, ServiceConnectionError) and not exc.request_sent
        ):
            return True
        else:
            reason = "not_idempotent"
        self._skip(request, reason, exc)
        return False

    def _retryable_429(self, exc: ServiceProxyError) -> bool:
        return self.settings.retry_on_429 and exc.status_code == 429

    def _should_stop(
        self,
        request: CallRequest,
        deadline: float | None,
        state: tenacity.RetryCallState,
    ) -> bool:
        if state.attempt_number > request.retries:
            self._skip(request, "attempts_exhausted", None)
            return True
        if self.breaker is not None and self.breaker.state is CircuitState.OPEN:
            self._reject(request, "circuit_open")
            return True
        remaining = _remaining(deadline)
        if remaining is not None and remaining - state.upcoming_sleep < request.timeout:
            self._reject(request, "deadline")
            return True
        if self.budget is not None and not self.budget.try_spend():
            self._reject(request, "retry_budget")
            return True
        return False

    def _wait_seconds(self, state: tenacity.RetryCallState) -> float:
        wait = float(self._backoff(state))
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait

    def _before_sleep(
        self, request: CallRequest, state: tenacity.RetryCallState
    ) -> None:
        self._metrics[request.operation].retries.inc()
        outcome = state.outcome
        cause = outcome.exception() if outcome is not None else None
        self._log.warning(
            "{method} {path} attempt {attempt} failed ({cause}); "
            "retrying in {wait:.2f} s",
            method=request.method,
            path=request.path,
            attempt=state.attempt_number,
            cause=type(cause).__name__,
            kind=getattr(cause, "kind", None),
            wait=state.upcoming_sleep,
        )

    def _skip(
        self, request: CallRequest, reason: str, exc: ServiceProxyError | None
    ) -> None:
        self._skipped.labels(self.name, reason).inc()
        self._log.debug(
            "{method} {path} not retried: {reason}",
            method=request.method,
            path=request.path,
            reason=reason,
            kind=None if exc is None else exc.kind.value,
        )

    def _reject(self, request: CallRequest, reason: str) -> None:
        self._rejected.labels(self.name, reason).inc()
        self._log.debug(
            "{method} {path} attempt rejected: {reason}",
            method=request.method,
            path=request.path,
            reason=reason,
        )

    async def _attempt(
        self,
        request: CallRequest,
        deadline: float | None,
        attempt: int,
        used: list[Endpoint] | None,
    ) -> tuple[Any, int]:
        """Send one attempt through the cool-down, breaker, bulkhead and endpoints.

        Returns the decoded body and the response's status.

        The common case, no cool-down and a free bulkhead slot, awaits nothing
        but the response. ``used`` is None when the service has one endpoint.
        Otherwise the chosen endpoint is appended to it.

        The attempt's requests, the first one and any that follow a redirect,
        are sent here rather than by a method of their own. In side-by-side
        runs at concurrency 16 on the 2-core benchmark machine, that one more
        call on every attempt cost about 4 µs of CPU, 4 % of a loopback call.
        """
        now = time.monotonic()
        remaining = None if deadline is None else deadline - now
        if remaining is not None and remaining <= 0:
            self._reject(request, "deadline")
            raise self._deadline_error(request, "the deadline passed before sending")
        # When the attempt sends its first request; redirects and the deadline
        # check of a 504 measure from here. Moved on by any wait below.
        sent_at = now
        if self.cooldown.until > now:
            remaining = await self._wait_for_cooldown(request, deadline, remaining)
            sent_at = time.monotonic()
        breaker = self.breaker
        if breaker is not None and not breaker.closed and not breaker.try_acquire():
            self._reject(request, "circuit_open")
            details = f"circuit open; next probe in {breaker.open_remaining():.1f} s"
            raise CircuitOpenError(
                self.name, None, details, method=request.method, path=request.path
            )
        if attempt == 1 and self.budget is not None:
            # Every admitted call earns its share of retries for the others.
            self.budget.record_call()
        bulkhead = self.bulkhead
        spread = self._spread
        endpoint: Endpoint | None = None
        try:
            if bulkhead is not None and not bulkhead.try_acquire():
                await self._queue_for_bulkhead(request, bulkhead, remaining)
                sent_at = time.monotonic()
                remaining = None if deadline is None else deadline - sent_at
            if spread is not None and used is not None:
                endpoint = spread.pick(used)
                used.append(endpoint)
            try:
                url = (
                    request.url if endpoint is None else endpoint.resolve(request.path)
                )
                timeout = request.timeout
                capped = remaining is not None and remaining < timeout
                if capped:
                    timeout = max(remaining or 0.0, 0.0)
                timeouts = self._timeouts
                # The request being sent: the call's own, then each redirect's.
                method, hop_url, params = request.method, url, request.params
                payload, hop_headers = request.body, request.headers
                seconds = timeout
                redirects = 0
                while True:
                    budget_ms = int(seconds * 1000)
                    if budget_ms <= 0:
                        # Under a millisecond left: the header would tell the
                        # service to give up at once, and aiohttp reads a
                        # total timeout of 0 as none.
                        raise self._timeout_error(request, capped)
                    headers = dict(hop_headers)
                    headers[DEADLINE_HEADER] = str(budget_ms)
                    request_id = current_request_id()
                    if request_id is not None:
                        headers.setdefault(REQUEST_ID_HEADER, request_id)
                    call_span = inject_trace_context(headers)
                    task = timeouts.enter(seconds)
                    retry_after: str | None = None
                    location: str | None = None
                    status: int | None = None
                    try:
                        try:
                            # Awaited rather than entered with "async with": the
                            # context manager costs five coroutines per request,
                            # and release() below is all its exit does once the
                            # body is read.
                            response = await self._session.request(
                                method,
                                hop_url,
                                params=params,
                                data=payload,
                                headers=headers,
                                timeout=_NO_TIMEOUT
                                if task is not None
                                else aiohttp.ClientTimeout(total=seconds),
                                allow_redirects=False,
                            )
                            try:
                                status = response.status
                                if call_span is not None:
                                    call_span.status_code = status
                                if status in _RETRY_AFTER_STATUSES:
                                    retry_after = response.headers.get("Retry-After")
                                if status in wire.REDIRECT_STATUSES:
                                    location = response.headers.get("Location")
                                if location is not None and self._follow_redirects:
                                    # The body of a followed redirect is not used.
                                    body = b""
                                elif wire.fits_whole(response, self._max_body_bytes):
                                    body = await response.read()
                                else:
                                    body = await wire.read_body(
                                        request, response, self._max_body_bytes
                                    )
                            finally:
                                response.release()
                        except asyncio.CancelledError:
                            if task is None or not timeouts.expired(task):
                                raise
                            raise TimeoutError from None
                        finally:
                            if task is not None:
                                timeouts.leave(task)
                    except _CLIENT_ERRORS as exc:
                        raise self._client_error(
                            request, exc, status, capped, seconds, redirects > 0
                        ) from exc
                    except RuntimeError as exc:
                        # aiohttp raises RuntimeError for a session that is
                        # closed, or that closes under the call.
                        if not self._session.closed:
                            raise
                        details = (
                            "the client session is closed; the container was shut down"
                        )
                        raise ServiceSessionClosedError(
                            self.name,
                            None,
                            details,
                            method=request.method,
                            path=request.path,
                        ) from exc
                    if location is None or not self._follow_redirects:
                        break
                    if redirects == MAX_REDIRECTS:
                        details = f"more than {MAX_REDIRECTS} redirects"
                        raise ServiceRedirectError(
                            self.name,
                            status,
                            details,
                            method=request.method,
                            path=request.path,
                        )
                    # Only to the first URL's origin, so never from one endpoint
                    # of the service to another. The next request gets what is
                    # left of the attempt's timeout, counted from its first.
                    method, hop_url, payload, hop_headers = self._next_hop(
                        request,
                        method,
                        hop_url,
                        payload,
                        hop_headers,
                        status,
                        location,
                        url,
                    )
                    params = None
                    redirects += 1
                    seconds = sent_at + timeout - time.monotonic()
            finally:
                if endpoint is not None:
                    self.endpoints.release(endpoint)
                if bulkhead is not None:
                    bulkhead.release()
            if not 200 <= status < 300:
                raise self._status_error(
                    request,
                    deadline,
                    status,
                    body,
                    retry_after,
                    endpoint,
                    capped,
                    sent_at,
                )
            result = wire.decode_body(request, status, body, request.model)
        except ServiceProxyError as exc:
            self._record_outcome(exc, endpoint)
            raise
        except BaseException:
            if breaker is not None:
                breaker.record_ignored()
            raise
        if endpoint is not None:
            self.endpoints.record_success(endpoint)
        if breaker is not None:
            breaker.record_success()
        return result, status

    async def _wait_for_cooldown(
        self, request: CallRequest, deadline: float | None, remaining: float | None
    ) -> float | None:
        """Wait out a shared Retry-After cool-down; return the deadline's remainder."""
        cooldown = self.cooldown.remaining()
        if remaining is not None and cooldown >= remaining:
            self._reject(request, "cooldown")
            details = (
                f"the service asked callers to wait {cooldown:.1f} s, beyond the "
                f"call's remaining {remaining:.1f} s"
            )
            raise ServiceCooldownError(
                self.name,
                None,
                details,
                method=request.method,
                path=request.path,
            )
        await asyncio.sleep(cooldown)
        return _remaining(deadline)

    async def _queue_for_bulkhead(
        self, request: CallRequest, bulkhead: Bulkhead, remaining: float | None
    ) -> None:
        try:
            async with asyncio.timeout(remaining):
                await bulkhead.acquire_queued()
        except BulkheadRejectedError as exc:
            self._reject(request, "bulkhead_full")
            raise BulkheadFullError(
                self.name, None, str(exc), method=request.method, path=request.path
            ) from exc
        except TimeoutError as exc:
            self._reject(request, "deadline")
            details = "the deadline passed while waiting for a bulkhead slot"
            raise self._deadline_error(request, details) from exc

    def _record_outcome(
        self, exc: ServiceProxyError, endpoint: Endpoint | None
    ) -> None:
        """Record what a failed attempt shows about the service's health.

        A failure that the endpoint set attributes to one endpoint, while
        another one responds, is left to outlier detection, so that losing
        one endpoint of several does not open the service's circuit.
        """
        if endpoint is not None:
            if isinstance(exc, ServiceDeadlineError) and self._slow_enough(exc):
                # An endpoint that hangs until every caller's deadline cuts
                # it is as dead as one that refuses connections.
                self.endpoints.record_failure(endpoint)
            else:
                self.endpoints.record_error(endpoint, exc)
        breaker = self.breaker
        if breaker is None:
            return
        if isinstance(exc, ServiceClientError | ServiceRedirectError):
            # The service responded as designed; a 4xx shows nothing of its health.
            breaker.record_success()
        elif (exc.retryable and not isinstance(exc, ServiceDeadlineError)) or (
            isinstance(exc, ServiceDeadlineError) and self._slow_enough(exc)
        ):
            # 5xx, timeouts, refused or broken connections, cut bodies, and
            # attempts cut by the deadline after a long wait.
            if endpoint is not None and self.endpoints.absorbs_failure(endpoint):
                breaker.record_ignored()
            else:
                breaker.record_failure()
        else:
            # Rejections, deadlines, a closed session and undecodable bodies are
            # on this side of the wire.
            breaker.record_ignored()

    def _slow_enough(self, exc: ServiceDeadlineError) -> bool:
        """Tell whether an attempt cut by the caller's deadline counts as failed.

        Callers with short deadlines must not open the circuit of a healthy
        service, nor keep it open. So a cut attempt counts only when the
        upstream had kept it waiting for breaker_slow_call seconds. A half-open
        probe cut sooner gives its permit back, and the next call probes.
        """
        return exc.waited > 0 and exc.waited >= self.settings.breaker_slow_call

    def _status_error(
        self,
        request: CallRequest,
        deadline: float | None,
        status: int,
        body: bytes,
        retry_after: str | None,
        endpoint: Endpoint | None,
        capped: bool,
        sent_at: float,
    ) -> ServiceProxyError:
        """Return the error that a final response's status other than 2xx means.

        A 504 that arrives as the caller's deadline ends, to an attempt whose
        deadline header carried that shorter deadline, is the deadline ending,
        not a failure of the service: a caller with a short deadline must not
        open the circuit of a healthy one. A 504 with time left is the service's.
        ``sent_at`` is the time.monotonic() of the attempt's first request.
        """
        if status == 504 and capped and _deadline_spent(deadline):
            cut = self._deadline_error(
                request, "the service stopped at the deadline this call passed on"
            )
            cut.status_code = status
            # The service held the attempt until the deadline, as a hanging one
            # does, so the slow-call rule applies as to an attempt cut here.
            cut.waited = time.monotonic() - sent_at
            return cut
        if status < 200:
            details = f"final response with informational status {status}"
            return ServiceProtocolError(
                self.name, None, details, method=request.method, path=request.path
            )
        error = wire.status_error(
            request, status, self._without_token(body), self._token
        )
        self._apply_retry_after(error, retry_after, endpoint)
        return error

    def _client_error(
        self,
        request: CallRequest,
        exc: BaseException,
        status: int | None,
        capped: bool,
        seconds: float,
        redirected: bool,
    ) -> ServiceProxyError:
        """Return the error that an exception of aiohttp or the socket means.

        ``redirected`` is True for a request that follows a redirect: the
        attempt's first request reached the service then, so the attempt
        counts as sent even when this one never left.
        """
        error = wire.translate_client_error(request, exc, status)
        if redirected and isinstance(error, ServiceConnectionError):
            error.request_sent = True
        if capped and isinstance(error, ServiceTimeoutError):
            cut = self._deadline_error(request, "the deadline passed mid-call")
            # Only the total timeout is set, so the attempt waited all of it.
            cut.waited = seconds
            return cut
        return error

    def _next_hop(
        self,
        target: wire.CallTarget,
        method: str,
        url: yarl.URL,
        body: bytes | None,
        headers: Mapping[str, str],
        status: int,
        location: str,
        first_url: yarl.URL,
    ) -> tuple[str, yarl.URL, bytes | None, Mapping[str, str]]:
        """Return the method, URL, body and headers of the request that follows a
        redirect to the first URL's origin."""
        origin = wire.origin_of(first_url)
        next_url = wire.resolve_redirect(target, url, status, location, origin)
        next_method = wire.redirect_method(status, method)
        if next_method == method:
            return method, next_url, body, headers
        kept = {
            name: value
            for name, value in headers.items()
            if name.lower() != "content-type"
        }
        return next_method, next_url, None, kept

    def _without_token(self, body: bytes) -> bytes:
        """Replace the service's token in an error body, should the upstream echo it."""
        token = self.settings.auth_token
        if token is None or not body:
            return body
        secret = token.get_secret_value().encode()
        return body.replace(secret, REDACTED.encode()) if secret else body

    def _timeout_error(self, request: CallRequest, capped: bool) -> ServiceProxyError:
        if capped:
            return self._deadline_error(request, "the deadline passed mid-call")
        details = "the attempt timed out"
        return ServiceTimeoutError(
            self.name, None, details, method=request.method, path=request.path
        )

    def _apply_retry_after(
        self, error: ServiceProxyError, header: str | None, endpoint: Endpoint | None
    ) -> None:
        """Honour a Retry-After for this call's retry and for every caller.

        With several endpoints the header holds back only the endpoint that
        sent it, and the service waits only when every endpoint sent one.
        """
        if header is None:
            return
        if error.status_code == 429 and not self.settings.retry_on_429:
            return
        seconds = parse_retry_after(header)
        if seconds is None:
            return
        seconds = min(seconds, self.settings.retry_after_max)
        if endpoint is not None:
            seconds = self.endpoints.cool_down(endpoint, seconds)
            if not seconds:
                return
        error.retry_after = seconds
        self.cooldown.extend(seconds)

    def _deadline_error(
        self, request: CallRequest, details: str
    ) -> ServiceDeadlineError:
        return ServiceDeadlineError(
            self.name,
            None,
            details,
            method=request.method,
            path=request.path,
        )

    def _build_breaker(self, settings: ServiceSettings) -> CircuitBreaker | None:
        if not settings.breaker_enabled:
            return None
        return CircuitBreaker(
            self.name,
            failure_ratio=settings.breaker_failure_ratio,
            minimum_calls=settings.breaker_minimum_calls,
            window=settings.breaker_window,
            break_duration=settings.breaker_break_duration,
            half_open_probes=settings.breaker_half_open_probes,
            on_state_change=self._circuit_changed,
        )

    def _circuit_changed(self, name: str, old: CircuitState, new: CircuitState) -> None:
        self._circuit_gauge.set(new)
        if new is CircuitState.OPEN:
            self._check_circuit_later(self.settings.breaker_break_duration)
        self._log.warning(
            "circuit of {service} went from {old} to {new}",
            service=name,
            old=old.name.lower(),
            new=new.name.lower(),
        )

    def _check_circuit_later(self, delay: float) -> None:
        """Read the breaker's state in ``delay`` seconds.

        The read turns an open circuit whose break has ended half-open, so the
        gauge shows it before the next call arrives.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # Outside an event loop the next call or state read moves it on.
            return
        if self._circuit_timer is not None:
            self._circuit_timer.cancel()
        self._circuit_timer = loop.call_later(delay, self._check_circuit)

    def _check_circuit(self) -> None:
        self._circuit_timer = None
        if self.breaker is None:
            return
        # open_remaining() reads the state, which makes a due transition.
        remaining = self.breaker.open_remaining()
        if remaining > 0:
            # The timer fired a little early; wait for the rest of the break.
            self._check_circuit_later(remaining)


def _remaining(deadline: float | None) -> float | None:
    """Return the seconds left before ``deadline``, or None without one."""
    return None if deadline is None else deadline - time.monotonic()


def _deadline_spent(deadline: float | None) -> bool:
    """Tell whether the call's deadline has ended, or will within the slack.

    The slack covers the milliseconds that the deadline header drops and the
    response's way back.
    """
    remaining = _remaining(deadline)
    return remaining is not None and remaining < _DEADLINE_SLACK


def _failure_log_level(exc: ServiceProxyError) -> str:
    """Pick the level of a final failure's log line.

    Rejections repeat for every call while a circuit is open. A short deadline is
    the caller's choice, and a 4xx is the response to a bad request. The metrics
    count all of them, so their lines stay below ERROR, which is kept for
    failures of the service.
    """
    if isinstance(exc, ServiceRejectedError):
        return "DEBUG"
    if isinstance(exc, ServiceDeadlineError | ServiceClientError):
        # A 4xx is the service's response to this request, such as an unknown id.
        return "WARNING"
    return "ERROR"


def _backoff_strategy(settings: ServiceSettings) -> tenacity.wait.wait_base:
    """Build the exponential backoff with the configured kind of jitter.

    Equal jitter waits half the exponential step plus a random part of the other
    half, so no retry fires at once and a fleet of callers spreads out.
    """
    initial = settings.backoff_initial
    base = settings.backoff_multiplier
    ceiling = settings.backoff_max
    if settings.jitter == "full":
        return tenacity.wait_random_exponential(
            multiplier=initial, exp_base=base, max=ceiling
        )
    if settings.jitter == "equal":
        half_fixed = tenacity.wait_exponential(
            multiplier=initial / 2, exp_base=base, max=ceiling / 2
        )
        half_random = tenacity.wait_random_exponential(
            multiplier=initial / 2, exp_base=base, max=ceiling / 2
        )
        return half_fixed + half_random
    return tenacity.wait_exponential(multiplier=initial, exp_base=base, max=ceiling)
