"""Faults that tests inject into the sandbox services, route by route."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from loguru import logger

from app.sandbox.common import ApiError, api_error_response, error_response

USER_ROUTE_NAMES = frozenset(
    {
        "get_profile",
        "get_user",
        "get_user_exists",
        "get_user_stats",
        "list_users",
        "patch_profile",
        "release_quota",
        "reserve_quota",
        "user_service_health",
    }
)
INTERVIEW_ROUTE_NAMES = frozenset(
    {
        "add_candidate",
        "archive_interview",
        "create_interview",
        "delete_interview",
        "get_interview",
        "get_interview_stats",
        "get_user_interview_stats",
        "interview_service_health",
        "list_candidates",
        "list_user_interviews",
        "patch_interview",
        "pause_interview",
        "publish_interview",
    }
)
ROUTE_NAMES = USER_ROUTE_NAMES | INTERVIEW_ROUTE_NAMES

# Limits that keep the state of a SandboxFaults small whatever a test requests.
MAX_TIMES = 1_000
MAX_QUEUED_FAULTS = 32


@dataclass(frozen=True)
class DropAfterCommit:
    """A fault that runs the handler, then closes the connection without a response."""


@dataclass(frozen=True)
class InjectedFailure:
    """A fault that sends ``status`` at once, optionally with a Retry-After value."""

    status: int
    retry_after: str | None = None


Fault = DropAfterCommit | InjectedFailure


@dataclass
class _QueuedFault:
    fault: Fault
    remaining: int


class SandboxFaults:
    """Faults queued per route, each applied to the next requests of that route.

    Pass one to ``create_user_service_app(faults=...)`` or
    ``create_interview_service_app(faults=...)``, or the same one to both, because
    route names are unique across the two services. Nothing is injected until a
    test queues a fault, and no HTTP endpoint reaches this object.

    Route names of user-service: ``user_service_health``, ``get_user_exists``,
    ``list_users``, ``get_user``, ``get_profile``, ``patch_profile``,
    ``reserve_quota``, ``release_quota``, ``get_user_stats``.

    Route names of interview-service: ``interview_service_health``,
    ``create_interview``, ``get_interview``, ``patch_interview``,
    ``delete_interview``, ``list_candidates``, ``add_candidate``,
    ``get_interview_stats``, ``publish_interview``, ``pause_interview``,
    ``archive_interview``, ``list_user_interviews``, ``get_user_interview_stats``.

    Faults of one route apply in the order they were queued. A request takes its
    fault when it reaches the route, after the latency delay, so a request that
    the deadline cancels earlier takes none. A lock guards the counters, so each
    fault applies to exactly ``times`` requests even when requests run
    concurrently or a test queues faults from another thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[_QueuedFault]] = {}

    def drop_after_commit(self, route_name: str, *, times: int = 1) -> None:
        """Let the next ``times`` requests run, then close without a response.

        The handler runs to the end, so its mutation commits and a response to a
        request with an ``Idempotency-Key`` is stored for replay. Then the TCP
        connection closes, and the client sees a disconnect.

        NOTE: aiohttp's ClientSession (3.14) resends a GET, PUT or DELETE once
        after a disconnect, so its caller sees the drop of such a request only
        when ``times`` is at least 2.
        """
        self._queue(route_name, DropAfterCommit(), times)

    def fail(
        self,
        route_name: str,
        status: int,
        *,
        times: int = 1,
        retry_after: str | None = None,
    ) -> None:
        """Send ``status`` to the next ``times`` requests and do no work.

        The body is a JSON ``{"message": ...}``, and ``retry_after`` is sent as
        is in a ``Retry-After`` header, so a test may also send a malformed one.
        The Idempotency-Key store keeps no such response.
        """
        if not 400 <= status <= 599:
            message = f"status must be an error status 400-599, got {status}"
            raise ValueError(message)
        if retry_after is not None and not _is_header_value(retry_after):
            message = (
                "retry_after must be a non-empty string of printable ASCII, "
                f"got {retry_after!r}"
            )
            raise ValueError(message)
        self._queue(route_name, InjectedFailure(status, retry_after), times)

    def pending(self, route_name: str) -> int:
        """Count the requests of ``route_name`` that queued faults still apply to."""
        _check_route_name(route_name)
        with self._lock:
            queue = self._queues.get(route_name, ())
            return sum(item.remaining for item in queue)

    def clear(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._queues.clear()

    def take(self, route_name: str) -> Fault | None:
        """Consume one use of the first fault queued for ``route_name``."""
        with self._lock:
            queue = self._queues.get(route_name)
            if not queue:
                return None
            head = queue[0]
            head.remaining -= 1
            if head.remaining == 0:
                queue.popleft()
            if not queue:
                del self._queues[route_name]
            return head.fault

    def _queue(self, route_name: str, fault: Fault, times: int) -> None:
        _check_route_name(route_name)
        if not 1 <= times <= MAX_TIMES:
            message = f"times must be between 1 and {MAX_TIMES}, got {times}"
            raise ValueError(message)
        with self._lock:
            queue = self._queues.setdefault(route_name, deque())
            if len(queue) >= MAX_QUEUED_FAULTS:
                message = (
                    f"route {route_name!r} already has {MAX_QUEUED_FAULTS} queued "
                    "faults, so let requests consume them or call clear() first"
                )
                raise ValueError(message)
            queue.append(_QueuedFault(fault, times))


def _check_route_name(route_name: str) -> None:
    if route_name not in ROUTE_NAMES:
        known = ", ".join(sorted(ROUTE_NAMES))
        message = f"unknown route name {route_name!r}, expected one of {known}"
        raise ValueError(message)


def _is_header_value(value: str) -> bool:
    return bool(value.strip()) and value.isascii() and value.isprintable()


def make_faults_middleware(faults: SandboxFaults) -> Middleware:
    """Create a middleware that applies the faults queued in ``faults``.

    It must run outside the Idempotency-Key middleware: an injected failure is then
    never stored, and a dropped request's response is stored before the drop.
    """

    @web.middleware
    async def faults_middleware(
        request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        route_name = request.match_info.route.name
        if route_name is None:
            return await handler(request)
        fault = faults.take(route_name)
        if fault is None:
            return await handler(request)

        log = logger.bind(route=route_name)
        if isinstance(fault, InjectedFailure):
            log.debug("Injected {} on route {}", fault.status, route_name)
            return _failure_response(route_name, fault)

        try:
            response = await handler(request)
        except ApiError as exc:
            response = api_error_response(request, exc)
        log.debug("Dropping the connection after route {}", route_name)
        _drop_connection(request)
        return response

    return faults_middleware


def _failure_response(route_name: str, fault: InjectedFailure) -> web.Response:
    status = fault.status
    message = f"Route '{route_name}' returned {status} because a test injected it."
    headers = None
    if fault.retry_after is not None:
        headers = {"Retry-After": fault.retry_after}
    return error_response(status, message, headers=headers)


def _drop_connection(request: web.Request) -> None:
    # abort() closes the socket at once and discards unsent data. aiohttp then fails
    # to write the returned response with a ConnectionError, which it handles as a
    # client that went away (aiohttp 3.10 to 3.14, web_protocol.finish_response).
    transport = request.transport
    if transport is not None:
        transport.abort()
