"""Fault matrix: each upstream fault through one GET and one keyed POST call."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry

from app.metrics import ProxyMetrics
from app.proxies import UserServiceProxy
from app.proxies.errors import (
    ServiceClientError,
    ServiceConnectionError,
    ServiceDecodeError,
    ServiceIncompleteBodyError,
    ServiceProxyError,
    ServiceRedirectError,
    ServiceServerError,
    ServiceTimeoutError,
)
from app.settings import HttpClientSettings, ServiceSettings
from app.testing import Reply, ScriptedUpstream, closed_port_url
from tests.faults.probes import LoopbackResolver, PeakRss, open_fd_count, other_tasks
from tests.helpers import USER_JSON

__all__ = [
    "CALLS",
    "FAULTS",
    "ROWS",
    "SETTINGS",
    "Call",
    "Expected",
    "Fault",
    "Observation",
    "Row",
    "Target",
    "compare",
    "find_leaks",
    "run_row",
]

# Production settings shrunk so that the matrix runs in seconds: a 0.3 s timeout
# for 2 s, a 1.5 s deadline for 15 s, and waits of 10 to 50 ms for 1 to 10 s.
# Three attempts and their two waits fit in the deadline.
SETTINGS: dict[str, Any] = {
    "timeout": 0.3,
    "deadline": 1.5,
    "retries": 2,
    "backoff_initial": 0.01,
    "backoff_max": 0.05,
    "jitter": "none",
    "retry_after_max": 0.05,
}
# The reserved .invalid domain (RFC 6761), resolved by LoopbackResolver only.
UNRESOLVABLE_URL = "http://nothing.invalid:80"
# Five times the default max_body_bytes of 10 MiB.
LARGE_BODY_BYTES = 50 * 1024 * 1024
# Maximum growth of the resident set during a large-body row. Reading the 10 MiB
# prefix of a body without Content-Length holds it twice while it is joined.
MAX_RSS_GROWTH = 25 * 1024 * 1024
# Seconds that a call may end after its deadline: the last attempt's cleanup.
DEADLINE_SLACK = 0.1
# Seconds past the deadline after which the runner abandons a call that hangs.
RUNAWAY_MARGIN = 2.0
# Rounds of 10 ms in which closed sockets and ended tasks must disappear.
SETTLE_ROUNDS = 50

USER_BODY = USER_JSON
RESERVATION_BODY: dict[str, Any] = {
    "reservationId": "res-1",
    "userId": "1",
    "createdAt": "2026-03-01T09:30:00Z",
    "quotaUsed": 1,
    "quotaLimit": 10,
}


@dataclass(frozen=True)
class Call:
    """One proxy call of the matrix, with the reply that would satisfy it."""

    name: str
    method: str
    status: int
    body: dict[str, Any]
    send: Callable[[UserServiceProxy], Awaitable[object]]


CALLS = (
    Call("get_user", "GET", 200, USER_BODY, lambda proxy: proxy.get_user("1")),
    Call(
        "reserve_interview_quota",
        "POST",
        201,
        RESERVATION_BODY,
        lambda proxy: proxy.reserve_interview_quota("1"),
    ),
)


class Target(enum.Enum):
    """Where the proxy's base URL points."""

    UPSTREAM = "the scripted upstream"
    CLOSED_PORT = "a loopback port that nothing listens on"
    UNRESOLVABLE = "a host name that does not resolve"
    REDIRECT = "an upstream that redirects to a second one on 127.0.0.2"


@dataclass(frozen=True)
class Fault:
    """One way for an upstream to fail, scripted as a reply to every request."""

    name: str
    title: str
    reply: Callable[[Call], Reply] | None = None
    target: Target = Target.UPSTREAM


@dataclass(frozen=True)
class Expected:
    """The behaviour that the README and the code promise for one row.

    ``error`` None means that the call returns its model. ``hits`` is the range of
    requests the upstream receives, ``attempts`` the proxy's attempts, and
    ``skip_reason`` the label that service_retries_skipped_total counts once.
    ``bug`` names a known bug, which makes the row a strict xfail.
    """

    error: type[ServiceProxyError] | None
    hits: tuple[int, int]
    attempts: int
    status_code: int | None = None
    request_sent: bool | None = None
    skip_reason: str | None = None
    details: str | None = None
    min_elapsed: float = 0.0
    max_rss_growth: int | None = None
    bug: str | None = None

    @property
    def outcome(self) -> str:
        """Name of the expected error class, or ``ok``."""
        return "ok" if self.error is None else self.error.__name__

    @property
    def retried(self) -> bool:
        """True when the call is expected to send more than one attempt."""
        return self.attempts > 1


@dataclass(frozen=True)
class Row:
    """One fault through one call, with its expected behaviour."""

    fault: Fault
    call: Call
    expected: Expected

    @property
    def id(self) -> str:
        """Test id of the row."""
        return f"{self.fault.name}-{self.call.method.lower()}"


@dataclass(frozen=True)
class Observation:
    """What one row did: outcome, error fields, traffic, time, metrics, leaks.

    ``details`` is the error's details as text, or the name of the returned type.
    Times are in seconds and ``rss_growth`` in bytes.
    """

    outcome: str
    status_code: int | None
    kind: str | None
    is_network_error: bool | None
    is_timeout: bool | None
    request_sent: bool | None
    attempts: int
    details: str
    hits: int
    redirect_hits: int
    elapsed: float
    deadline: float
    metrics: dict[str, float]
    tasks_delta: int
    fds_delta: int
    acquired: int
    rss_growth: int


def _json_reply(call: Call, **fields: Any) -> Reply:
    return Reply(
        status=call.status,
        body=call.body,
        content_type="application/json",
        **fields,
    )


def _fixed(reply: Reply) -> Callable[[Call], Reply]:
    return lambda _call: reply


def _html_error(status: int) -> Callable[[Call], Reply]:
    return _fixed(Reply.html_error(status))


def _retry_after(status: int) -> Callable[[Call], Reply]:
    body = {"message": "busy, retry later"}
    return _fixed(Reply.json(body, status, headers={"Retry-After": "1"}))


FAULTS = {
    fault.name: fault
    for fault in (
        Fault("refused", "connection refused", target=Target.CLOSED_PORT),
        Fault("hang", "accepts, never answers", _fixed(Reply(hang=True))),
        Fault(
            "delay_short",
            "headers after 0.1 s (timeout 0.3 s)",
            lambda call: _json_reply(call, delay_headers=0.1),
        ),
        Fault(
            "delay_long",
            "headers after 0.5 s (timeout 0.3 s)",
            lambda call: _json_reply(call, delay_headers=0.5),
        ),
        Fault(
            "slow_body",
            "body at one byte per 0.1 s",
            lambda call: _json_reply(call, slow_body_interval=0.1),
        ),
        Fault(
            "reset_mid_body",
            "RST after 20 body bytes",
            lambda call: _json_reply(call, reset_after_bytes=20),
        ),
        Fault(
            "short_body",
            "body shorter than Content-Length",
            lambda call: _json_reply(call, truncate_body_to=20),
        ),
        Fault(
            "chunked_cut",
            "chunked body without its last chunk",
            lambda call: _json_reply(call, chunked=True, cut_chunked=True),
        ),
        Fault("html_500", "500 with an HTML body", _html_error(500)),
        Fault("html_502", "502 with an HTML body", _html_error(502)),
        Fault("html_503", "503 with an HTML body", _html_error(503)),
        Fault("retry_after_503", "503 with Retry-After: 1", _retry_after(503)),
        Fault("retry_after_429", "429 with Retry-After: 1", _retry_after(429)),
        Fault(
            "not_json",
            "non-JSON body under application/json",
            _fixed(Reply(body="{not json", content_type="application/json")),
        ),
        Fault("empty_200", "200 with an empty body", _fixed(Reply(status=200))),
        Fault("no_content", "204 No Content", _fixed(Reply(status=204))),
        Fault(
            "large_body",
            "50 MiB body with Content-Length",
            _fixed(
                Reply(filler_bytes=LARGE_BODY_BYTES, content_type="application/json")
            ),
        ),
        Fault(
            "large_chunked",
            "50 MiB chunked body",
            _fixed(
                Reply(
                    filler_bytes=LARGE_BODY_BYTES,
                    content_type="application/json",
                    chunked=True,
                )
            ),
        ),
        Fault("redirect", "302 to another host", target=Target.REDIRECT),
        Fault(
            "bad_gzip",
            "Content-Encoding: gzip, body not gzip",
            # 200 for both calls, so that one expectation covers the status.
            lambda call: Reply.json(
                call.body, 200, headers={"Content-Encoding": "gzip"}
            ),
        ),
        Fault("dns", "host name does not resolve", target=Target.UNRESOLVABLE),
    )
}

# Every attempt fails in a way that is retried, until the attempts run out.
_EXHAUSTED: dict[str, Any] = {
    "hits": (3, 3),
    "attempts": 3,
    "skip_reason": "attempts_exhausted",
}
# The first response is final: a status or body that repeating cannot change.
_FINAL: dict[str, Any] = {"hits": (1, 1), "attempts": 1, "skip_reason": "not_retryable"}
# Three attempts of 0.3 s each and waits of 0.01 s and 0.02 s.
_THREE_TIMEOUTS = 0.9


def _expectations() -> dict[str, Expected]:
    """Return the expected behaviour of each fault, the same for both calls.

    The POST carries an Idempotency-Key, so the README makes it as safe to repeat
    as the GET, and no fault should tell the two calls apart.
    """
    unreachable = {**_EXHAUSTED, "hits": (0, 0), "request_sent": False}
    timeouts = {**_EXHAUSTED, "min_elapsed": _THREE_TIMEOUTS}
    large = {**_FINAL, "status_code": 200, "max_rss_growth": MAX_RSS_GROWTH}
    return {
        "refused": Expected(ServiceConnectionError, **unreachable),
        "hang": Expected(ServiceTimeoutError, **timeouts),
        "delay_short": Expected(None, hits=(1, 1), attempts=1, min_elapsed=0.1),
        "delay_long": Expected(ServiceTimeoutError, **timeouts),
        "slow_body": Expected(ServiceTimeoutError, **timeouts),
        "reset_mid_body": Expected(ServiceIncompleteBodyError, **_EXHAUSTED),
        "short_body": Expected(ServiceIncompleteBodyError, **_EXHAUSTED),
        "chunked_cut": Expected(ServiceIncompleteBodyError, **_EXHAUSTED),
        "html_500": Expected(
            ServiceServerError,
            status_code=500,
            details="500 Internal Server Error",
            **_EXHAUSTED,
        ),
        "html_502": Expected(
            ServiceServerError, status_code=502, details="502 Bad Gateway", **_EXHAUSTED
        ),
        "html_503": Expected(
            ServiceServerError,
            status_code=503,
            details="503 Service Unavailable",
            **_EXHAUSTED,
        ),
        # Each of the two waits lasts at least Retry-After cut to retry_after_max.
        "retry_after_503": Expected(
            ServiceServerError, status_code=503, min_elapsed=0.1, **_EXHAUSTED
        ),
        # retry_on_429 is off by default, so a 429 is a final 4xx.
        "retry_after_429": Expected(ServiceClientError, status_code=429, **_FINAL),
        "not_json": Expected(ServiceDecodeError, status_code=200, **_FINAL),
        "empty_200": Expected(ServiceDecodeError, status_code=200, **_FINAL),
        "no_content": Expected(ServiceDecodeError, status_code=204, **_FINAL),
        "large_body": Expected(
            ServiceDecodeError, details="exceeds the limit", **large
        ),
        "large_chunked": Expected(
            ServiceDecodeError, details="exceeds the limit", **large
        ),
        "redirect": Expected(ServiceRedirectError, status_code=302, **_FINAL),
        # The README lists undecodable bodies among the failures never retried.
        "bad_gzip": Expected(
            ServiceDecodeError,
            status_code=200,
            details="Content-Encoding",
            **_FINAL,
        ),
        "dns": Expected(ServiceConnectionError, **unreachable),
    }


def _rows() -> tuple[Row, ...]:
    expectations = _expectations()
    missing = FAULTS.keys() ^ expectations.keys()
    if missing:
        message = f"faults and expectations must match, these differ: {missing}"
        raise ValueError(message)

    return tuple(
        Row(fault, call, expectations[name])
        for name, fault in FAULTS.items()
        for call in CALLS
    )


ROWS = _rows()


async def run_row(row: Row) -> Observation:
    """Run one row against fresh upstreams, session, proxy and registry."""
    tasks_before = len(other_tasks())
    fds_before = open_fd_count()
    registry = CollectorRegistry()
    async with contextlib.AsyncExitStack() as stack:
        upstream = await stack.enter_async_context(ScriptedUpstream())
        redirect_target: ScriptedUpstream | None = None
        url = upstream.url
        target = row.fault.target
        if target is Target.CLOSED_PORT:
            url = closed_port_url()
        elif target is Target.UNRESOLVABLE:
            url = UNRESOLVABLE_URL
        elif target is Target.REDIRECT:
            redirect_target = ScriptedUpstream(host="127.0.0.2")
            await stack.enter_async_context(redirect_target)
            location = f"{redirect_target.url}/users/1"
            upstream.script(Reply(status=302, headers={"Location": location}))

        if row.fault.reply is not None:
            upstream.script(row.fault.reply(row.call))

        settings = ServiceSettings(url=url, **SETTINGS)
        with PeakRss() as memory:
            outcome, elapsed, acquired = await _call(row.call, settings, registry)

        hits = upstream.hits
        redirect_hits = 0 if redirect_target is None else redirect_target.hits

    tasks_delta, fds_delta = await _settle(tasks_before, fds_before)
    metrics = read_metrics(registry)
    error = outcome if isinstance(outcome, ServiceProxyError) else None
    if error is not None:
        attempts = error.attempts
    else:
        attempts = int(metrics.get("retries_total", 0)) + 1

    return Observation(
        outcome=_outcome_name(outcome),
        status_code=None if error is None else error.status_code,
        kind=None if error is None else error.kind.value,
        is_network_error=None if error is None else error.is_network_error,
        is_timeout=None if error is None else error.is_timeout,
        request_sent=getattr(error, "request_sent", None),
        attempts=attempts,
        details=type(outcome).__name__ if error is None else str(error.details),
        hits=hits,
        redirect_hits=redirect_hits,
        elapsed=elapsed,
        deadline=settings.deadline,
        metrics=metrics,
        tasks_delta=tasks_delta,
        fds_delta=fds_delta,
        acquired=acquired,
        rss_growth=memory.growth_bytes,
    )


async def _call(
    call: Call, settings: ServiceSettings, registry: CollectorRegistry
) -> tuple[object, float, int]:
    """Send the call through a fresh session and proxy.

    Return the result or the error, the elapsed seconds, and the connections
    still acquired after the call.
    """
    pool = HttpClientSettings()
    connector = aiohttp.TCPConnector(
        limit=pool.connection_limit,
        limit_per_host=pool.connection_limit_per_host,
        keepalive_timeout=pool.keepalive_timeout,
        resolver=LoopbackResolver(),
    )
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        proxy = UserServiceProxy(session, settings, ProxyMetrics(registry))
        started = time.perf_counter()
        outcome: object
        try:
            async with asyncio.timeout(settings.deadline + RUNAWAY_MARGIN):
                outcome = await call.send(proxy)
        except ServiceProxyError as exc:
            outcome = exc
        except TimeoutError as exc:
            outcome = exc

        elapsed = time.perf_counter() - started
        # aiohttp has no public count of the connections in use, so this reads
        # the connector's private set of them (aiohttp 3.14, connector.py). It
        # must be empty: a connection still acquired after the call has leaked.
        acquired = len(connector._acquired)

    return outcome, elapsed, acquired


def _outcome_name(outcome: object) -> str:
    if isinstance(outcome, ServiceProxyError):
        return type(outcome).__name__

    if isinstance(outcome, TimeoutError):
        return "no end by the deadline"

    return "ok"


async def _settle(tasks_before: int, fds_before: int) -> tuple[int, int]:
    """Wait up to 0.5 s for tasks and descriptors to return to their baselines.

    Return the remaining deltas: positive ones are leaks.
    """
    tasks_delta = fds_delta = 0
    # A closed transport releases its socket on a later pass of the event loop.
    for _ in range(SETTLE_ROUNDS):
        tasks_delta = len(other_tasks()) - tasks_before
        fds_delta = open_fd_count() - fds_before
        if tasks_delta <= 0 and fds_delta <= 0:
            break

        await asyncio.sleep(0.01)

    return tasks_delta, fds_delta


# The label that distinguishes the series of each counter, or None for none.
_METRIC_LABELS = {
    "service_calls_total": "status",
    "service_retries_total": None,
    "service_calls_rejected_total": "reason",
    "service_retries_skipped_total": "reason",
}


def read_metrics(registry: CollectorRegistry) -> dict[str, float]:
    """Return the non-zero counters of a row, such as ``calls_total{error}``."""
    values: dict[str, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name not in _METRIC_LABELS or not sample.value:
                continue

            key = sample.name.removeprefix("service_")
            label = _METRIC_LABELS[sample.name]
            if label is not None:
                key = f"{key}{{{sample.labels[label]}}}"

            values[key] = values.get(key, 0.0) + sample.value

    return values


def compare(expected: Expected, observed: Observation) -> list[str]:
    """List every way in which an observation differs from its expectation."""
    problems: list[str] = []
    if observed.outcome != expected.outcome:
        problems.append(f"outcome {observed.outcome}, expected {expected.outcome}")

    low, high = expected.hits
    if not low <= observed.hits <= high:
        wanted = str(low) if low == high else f"{low} to {high}"
        problems.append(f"upstream hits {observed.hits}, expected {wanted}")

    if observed.attempts != expected.attempts:
        problems.append(f"attempts {observed.attempts}, expected {expected.attempts}")

    if expected.error is not None and observed.status_code != expected.status_code:
        problems.append(
            f"status_code {observed.status_code}, expected {expected.status_code}"
        )

    if (
        expected.request_sent is not None
        and observed.request_sent != expected.request_sent
    ):
        problems.append(
            f"request_sent {observed.request_sent}, expected {expected.request_sent}"
        )

    if expected.details is not None and expected.details not in observed.details:
        problems.append(f"details {observed.details!r} lack {expected.details!r}")

    if observed.redirect_hits:
        problems.append(f"the redirect was followed {observed.redirect_hits} times")

    problems += _compare_metrics(expected, observed)
    problems += _compare_resources(expected, observed)
    return problems


def _compare_metrics(expected: Expected, observed: Observation) -> list[str]:
    problems: list[str] = []
    status = "success" if expected.error is None else "error"
    calls = observed.metrics.get(f"calls_total{{{status}}}", 0.0)
    if calls != 1:
        problems.append(f"calls_total{{{status}}} is {calls:g}, expected 1")

    retries = observed.metrics.get("retries_total", 0.0)
    if retries != expected.attempts - 1:
        problems.append(
            f"retries_total is {retries:g}, expected {expected.attempts - 1}"
        )

    if expected.skip_reason is not None:
        key = f"retries_skipped_total{{{expected.skip_reason}}}"
        skipped = observed.metrics.get(key, 0.0)
        if skipped != 1:
            problems.append(f"{key} is {skipped:g}, expected 1")

    return problems


def _compare_resources(expected: Expected, observed: Observation) -> list[str]:
    problems: list[str] = []
    if observed.elapsed > observed.deadline + DEADLINE_SLACK:
        problems.append(
            f"took {observed.elapsed:.3f} s, past the {observed.deadline} s deadline"
        )

    if observed.elapsed < expected.min_elapsed:
        problems.append(
            f"took {observed.elapsed:.3f} s, expected at least {expected.min_elapsed} s"
        )

    limit = expected.max_rss_growth
    if limit is not None and observed.rss_growth > limit:
        problems.append(
            f"resident set grew by {observed.rss_growth / 2**20:.1f} MiB, "
            f"more than {limit / 2**20:.0f} MiB"
        )

    return problems


def find_leaks(observed: Observation) -> list[str]:
    """List the tasks, descriptors and connections that outlived a row."""
    leaks: list[str] = []
    if observed.tasks_delta > 0:
        leaks.append(f"{observed.tasks_delta} more pending tasks")

    if observed.fds_delta > 0:
        leaks.append(f"{observed.fds_delta} more open file descriptors")

    if observed.acquired:
        leaks.append(f"{observed.acquired} connections still acquired")

    return leaks
