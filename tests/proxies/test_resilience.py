"""Resilience of the proxies against scripted faults over loopback HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, ClassVar

import pytest
from loguru import logger
from prometheus_client import CollectorRegistry

from app.proxies import (
    BulkheadFullError,
    CircuitOpenError,
    ServiceClientError,
    ServiceConnectionError,
    ServiceDeadlineError,
    ServiceServerError,
    ServiceTimeoutError,
    UserServiceProxy,
)
from app.resilience.deadline import DEADLINE_HEADER, deadline_scope
from app.testing import Reply, ScriptedUpstream, closed_port_url
from tests.conftest import ProxyFactory
from tests.helpers import USER_JSON, sample

SERVICE = "user-service"
# Breaker and budget off, so that each test exercises only its own feature.
PLAIN: dict[str, Any] = {"breaker_enabled": False, "budget_enabled": False}


@pytest.fixture
def log_records() -> Iterator[list[dict[str, Any]]]:
    """Collect the level, message and extra fields of every log record."""
    records: list[dict[str, Any]] = []

    def keep(message: Any) -> None:
        record = message.record
        records.append(
            {
                "level": record["level"].name,
                "message": record["message"],
                **record["extra"],
            }
        )

    sink_id = logger.add(keep, level="DEBUG")
    yield records
    logger.remove(sink_id)


def rejected(registry: CollectorRegistry, reason: str) -> float:
    """Read service_calls_rejected_total of user-service for one reason."""
    return sample(
        registry, "service_calls_rejected_total", service=SERVICE, reason=reason
    )


def skipped(registry: CollectorRegistry, reason: str) -> float:
    """Read service_retries_skipped_total of user-service for one reason."""
    return sample(
        registry, "service_retries_skipped_total", service=SERVICE, reason=reason
    )


class TestSafeRetries:
    """Only calls that are safe to repeat are repeated."""

    async def test_put_and_delete_are_retried(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """PUT and DELETE are idempotent, so a 503 is retried."""
        upstream.script(Reply.json({"message": "busy"}, 503), Reply(status=204))
        proxy = make_proxy(upstream.url, **PLAIN)

        await proxy.put("/things/1", {"name": "a"})
        upstream.script(Reply.json({"message": "busy"}, 503), Reply(status=204))
        await proxy.delete("/things/1")

        assert upstream.hits == 4

    async def test_patch_without_key_is_sent_once(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """A PATCH with no Idempotency-Key is not retried, and the reason is counted."""
        upstream.script(Reply.json({"message": "busy"}, 503))
        proxy = make_proxy(upstream.url, **PLAIN)

        with pytest.raises(ServiceServerError):
            await proxy.patch("/things/1", {"name": "a"})

        assert upstream.hits == 1
        assert skipped(registry, "not_idempotent") == 1

    async def test_typed_writes_send_one_key_per_call(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """reserve_interview_quota sends the same new key on every attempt."""
        reservation = {
            "reservationId": "res-1",
            "userId": "1",
            "createdAt": "2026-01-01T00:00:00Z",
            "quotaUsed": 1,
            "quotaLimit": 5,
        }
        upstream.script(Reply.json({"message": "busy"}, 503), Reply.json(reservation))
        proxy = make_proxy(upstream.url, **PLAIN)

        await proxy.reserve_interview_quota("1")
        await proxy.reserve_interview_quota("1")

        keys = [request.headers["idempotency-key"] for request in upstream.requests]
        assert keys[0] == keys[1]
        assert keys[2] != keys[0]

    async def test_4xx_skip_is_logged_with_reason(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
        log_records: list[dict[str, Any]],
    ) -> None:
        """A 4xx is not retried, counted and logged at DEBUG with its reason."""
        upstream.script(Reply.json({"message": "no"}, 400))
        proxy = make_proxy(upstream.url, **PLAIN)

        with pytest.raises(ServiceClientError):
            await proxy.get("/x")

        reasons = [r.get("reason") for r in log_records if r["level"] == "DEBUG"]
        assert "not_retryable" in reasons
        assert skipped(registry, "not_retryable") == 1


class TestJitterAndRetryAfter:
    """Waits between attempts."""

    @pytest.mark.parametrize(
        ("jitter", "low", "high"), [("equal", 0.5, 1.0), ("full", 0.0, 1.0)]
    )
    async def test_jitter_stays_within_its_range(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        log_records: list[dict[str, Any]],
        jitter: str,
        low: float,
        high: float,
    ) -> None:
        """Each wait lies within its jitter range of the exponential step."""
        upstream.script(Reply.json({"message": "busy"}, 503))
        proxy = make_proxy(
            upstream.url,
            jitter=jitter,
            retries=3,
            backoff_initial=0.02,
            backoff_max=0.08,
            **PLAIN,
        )

        with pytest.raises(ServiceServerError):
            await proxy.get("/x")

        waits = [r["wait"] for r in log_records if r["level"] == "WARNING"]
        steps = [0.02, 0.04, 0.08]
        assert len(waits) == 3
        for wait, step in zip(waits, steps, strict=True):
            assert low * step - 1e-9 <= wait <= high * step + 1e-9

    async def test_retry_after_seconds_sets_the_wait(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        log_records: list[dict[str, Any]],
    ) -> None:
        """A 503 with Retry-After: 1 waits 1 s, capped by retry_after_max."""
        upstream.script(
            Reply.json({"message": "busy"}, 503, headers={"Retry-After": "1"}),
            Reply.json({"ok": True}),
        )
        proxy = make_proxy(upstream.url, retry_after_max=0.15, **PLAIN)

        assert await proxy.get("/x") == {"ok": True}

        waits = [r["wait"] for r in log_records if r["level"] == "WARNING"]
        assert waits == [pytest.approx(0.15)]

    async def test_retry_after_http_date_is_honoured(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        log_records: list[dict[str, Any]],
    ) -> None:
        """A Retry-After HTTP-date in the future gives a positive wait."""
        when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
        upstream.script(
            Reply.json({"message": "busy"}, 503, headers={"Retry-After": when}),
            Reply.json({"ok": True}),
        )
        proxy = make_proxy(upstream.url, retry_after_max=0.1, **PLAIN)

        await proxy.get("/x")

        waits = [r["wait"] for r in log_records if r["level"] == "WARNING"]
        assert waits == [pytest.approx(0.1)]

    async def test_429_is_not_retried_by_default(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """429 is a 4xx and is sent once unless retry_on_429 is set."""
        upstream.script(Reply.json({"message": "slow down"}, 429))
        proxy = make_proxy(upstream.url, **PLAIN)

        with pytest.raises(ServiceClientError):
            await proxy.get("/x")

        assert upstream.hits == 1

    async def test_429_is_retried_when_enabled(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """With retry_on_429 a 429 is retried after its Retry-After."""
        upstream.script(
            Reply.json({"message": "slow down"}, 429, headers={"Retry-After": "0"}),
            Reply.json({"ok": True}),
        )
        proxy = make_proxy(upstream.url, retry_on_429=True, **PLAIN)

        assert await proxy.get("/x") == {"ok": True}
        assert upstream.hits == 2

    async def test_retry_after_beyond_deadline_is_not_awaited(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """A Retry-After longer than the deadline ends the call at once."""
        upstream.script(
            Reply.json({"message": "busy"}, 503, headers={"Retry-After": "30"})
        )
        proxy = make_proxy(upstream.url, timeout=0.2, deadline=1.0, **PLAIN)
        started = time.perf_counter()

        with pytest.raises(ServiceServerError):
            await proxy.get("/x")

        assert time.perf_counter() - started < 0.9
        assert upstream.hits == 1
        assert rejected(registry, "deadline") == 1

    async def test_retry_after_holds_back_other_callers(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A Retry-After seen by one call delays the next call of another caller."""
        upstream.script(
            Reply.json({"message": "busy"}, 503, headers={"Retry-After": "5"}),
            Reply.json({"ok": True}),
        )
        proxy = make_proxy(upstream.url, retries=0, retry_after_max=0.3, **PLAIN)
        with pytest.raises(ServiceServerError):
            await proxy.get("/first")
        started = time.perf_counter()

        await proxy.get("/second")

        assert time.perf_counter() - started >= 0.2


class TestDeadlines:
    """Every call ends by its deadline."""

    async def test_deadline_cuts_a_hanging_call(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A call whose deadline is shorter than its timeout ends at the deadline."""
        upstream.script(Reply(hang=True))
        proxy = make_proxy(upstream.url, timeout=2.0, **PLAIN)
        started = time.perf_counter()

        with pytest.raises(ServiceDeadlineError) as caught:
            await proxy.get("/x", deadline=0.3)

        assert time.perf_counter() - started < 1.5
        assert caught.value.is_timeout
        assert upstream.hits == 1

    async def test_no_retry_that_cannot_finish(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """A retry is not started when its full timeout no longer fits."""
        upstream.script(Reply(hang=True))
        proxy = make_proxy(upstream.url, timeout=0.3, **PLAIN)

        with pytest.raises(ServiceTimeoutError):
            await proxy.get("/x", deadline=0.5)

        assert upstream.hits == 1
        assert rejected(registry, "deadline") == 1

    async def test_remaining_budget_is_sent_downstream(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """Each attempt carries the milliseconds it may take."""
        proxy = make_proxy(upstream.url, timeout=2.0, **PLAIN)

        with deadline_scope(0.5):
            await proxy.get("/x")

        sent = int(upstream.requests[0].headers[DEADLINE_HEADER.lower()])
        assert 0 < sent <= 500

    async def test_repeated_read_takes_each_scope(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A read made again, whose request is built once, gets each call's deadline."""
        upstream.script(Reply.json(USER_JSON), Reply.json(USER_JSON))
        proxy = make_proxy(upstream.url, timeout=2.0, **PLAIN)

        await proxy.get_user("1")
        with deadline_scope(0.5):
            await proxy.get_user("1")

        first = int(upstream.requests[0].headers[DEADLINE_HEADER.lower()])
        second = int(upstream.requests[1].headers[DEADLINE_HEADER.lower()])
        assert first == 2000
        assert 0 < second <= 500

    async def test_timeout_is_sent_without_a_deadline_scope(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """Outside any scope the attempt's own timeout is sent."""
        proxy = make_proxy(upstream.url, timeout=1.5, **PLAIN)

        await proxy.get("/x")

        assert upstream.requests[0].headers[DEADLINE_HEADER.lower()] == "1500"

    async def test_spent_scope_rejects_before_sending(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """A call made after its scope's deadline passed sends nothing."""
        proxy = make_proxy(upstream.url, **PLAIN)

        with deadline_scope(0.0):
            await asyncio.sleep(0.01)
            with pytest.raises(ServiceDeadlineError):
                await proxy.get("/x")

        assert upstream.hits == 0
        assert rejected(registry, "deadline") == 1


class TestRetryBudget:
    """Retries are bounded by a share of recent calls."""

    @pytest.mark.parametrize(("budget", "limit"), [(True, 1.2), (False, 4.0)])
    async def test_retry_budget_caps_amplification_under_outage(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        budget: bool,
        limit: float,
    ) -> None:
        """With every request failing, the budget keeps requests near 1.2x."""
        upstream.script(Reply.json({"message": "down"}, 503))
        proxy = make_proxy(
            upstream.url,
            retries=3,
            backoff_initial=0.0,
            backoff_max=0.0,
            breaker_enabled=False,
            budget_enabled=budget,
            budget_ratio=0.2,
            budget_min_retries=10,
        )
        calls = 200

        async def one_call() -> None:
            with pytest.raises(ServiceServerError):
                await proxy.get("/x")

        for _ in range(calls // 20):
            await asyncio.gather(*(one_call() for _ in range(20)))

        assert upstream.hits <= limit * calls
        assert upstream.hits >= calls


class TestCircuitBreaker:
    """The breaker opens on failures, fails fast, probes and closes."""

    BREAKER: ClassVar[dict[str, Any]] = {
        "retries": 0,
        "budget_enabled": False,
        "breaker_minimum_calls": 4,
        "breaker_failure_ratio": 0.5,
        "breaker_window": 10.0,
        "breaker_break_duration": 0.2,
        "breaker_half_open_probes": 2,
    }

    async def half_open_proxy(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> Any:
        """Open a proxy's circuit with four 503s and wait out its break."""
        upstream.script(Reply.json({"message": "down"}, 503))
        proxy = make_proxy(upstream.url, **self.BREAKER)
        for _ in range(4):
            with pytest.raises(ServiceServerError):
                await proxy.get("/x")
        await asyncio.sleep(0.25)
        return proxy

    async def test_circuit_breaker_opens_and_fails_fast(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """After enough 503s calls fail with CircuitOpenError, off the network."""
        upstream.script(Reply.json({"message": "down"}, 503))
        proxy = make_proxy(upstream.url, **self.BREAKER)
        for _ in range(4):
            with pytest.raises(ServiceServerError):
                await proxy.get("/x")

        with pytest.raises(CircuitOpenError) as caught:
            await proxy.get("/x")

        assert upstream.hits == 4
        assert caught.value.status_code is None
        assert sample(registry, "service_circuit_state", service=SERVICE) == 1
        assert rejected(registry, "circuit_open") == 1

    async def test_504_as_deadline_ends_keeps_circuit_closed(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """A 504 as the caller's shorter deadline ends is the caller's deadline."""
        # The upstream gives up 2 ms before the 0.2 s it was given, as a service
        # that honours the deadline header does.
        ends = dataclasses.replace(
            Reply.json({"message": "deadline exceeded"}, 504), delay_headers=0.198
        )
        upstream.script(ends)
        proxy = make_proxy(upstream.url, timeout=2.0, **self.BREAKER)

        for _ in range(6):
            with pytest.raises(ServiceDeadlineError):
                await proxy.get("/x", deadline=0.2)

        assert upstream.hits == 6
        assert sample(registry, "service_circuit_state", service=SERVICE) == 0

    async def test_504_after_a_long_hold_opens_circuit(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """A 504 at the deadline after breaker_slow_call counts, as a hang would."""
        held = dataclasses.replace(
            Reply.json({"message": "deadline exceeded"}, 504), delay_headers=0.198
        )
        upstream.script(held)
        proxy = make_proxy(
            upstream.url, timeout=2.0, breaker_slow_call=0.1, **self.BREAKER
        )

        for _ in range(4):
            with pytest.raises(ServiceDeadlineError):
                await proxy.get("/x", deadline=0.2)

        assert sample(registry, "service_circuit_state", service=SERVICE) == 1

    @pytest.mark.parametrize("deadline", [None, 1.0])
    async def test_504_with_time_left_opens_circuit(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
        deadline: float | None,
    ) -> None:
        """A quick 504 is the service failing, also to a caller's shorter deadline."""
        upstream.script(Reply.json({"message": "gateway timeout"}, 504))
        proxy = make_proxy(upstream.url, timeout=2.0, **self.BREAKER)
        options: dict[str, Any] = {} if deadline is None else {"deadline": deadline}

        for _ in range(4):
            with pytest.raises(ServiceServerError):
                await proxy.get("/x", **options)

        assert sample(registry, "service_circuit_state", service=SERVICE) == 1

    async def test_probe_cut_by_short_deadline_does_not_reopen(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """A half-open probe cut by its caller's deadline gives its permit back."""
        proxy = await self.half_open_proxy(upstream, make_proxy)
        upstream.script(Reply(hang=True))

        with pytest.raises(ServiceDeadlineError):
            await proxy.get("/x", deadline=0.03)
        after_cut = sample(registry, "service_circuit_state", service=SERVICE)
        upstream.script(Reply.json({"ok": True}))
        for _ in range(2):
            await proxy.get("/x")

        assert after_cut == 2
        assert sample(registry, "service_circuit_state", service=SERVICE) == 0

    async def test_deadline_under_a_millisecond_is_not_sent(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """An attempt with less than 1 ms left ends here, never as deadline 0."""
        upstream.script(Reply.json({"ok": True}))
        proxy = make_proxy(upstream.url, **self.BREAKER)

        with pytest.raises(ServiceDeadlineError):
            await proxy.get("/x", deadline=0.0005)

        assert upstream.hits == 0

    async def test_circuit_breaker_probes_then_closes(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
        log_records: list[dict[str, Any]],
    ) -> None:
        """After the break, successful probes close the circuit again."""
        upstream.script(Reply.json({"message": "down"}, 503))
        proxy = make_proxy(upstream.url, **self.BREAKER)
        for _ in range(4):
            with pytest.raises(ServiceServerError):
                await proxy.get("/x")
        upstream.script(Reply.json({"ok": True}))
        await asyncio.sleep(0.25)

        await proxy.get("/x")
        half_open = sample(registry, "service_circuit_state", service=SERVICE)
        await proxy.get("/x")

        assert half_open == 2
        assert sample(registry, "service_circuit_state", service=SERVICE) == 0
        changes = [
            r["message"] for r in log_records if r["message"].startswith("circuit")
        ]
        assert len(changes) == 3

    async def test_circuit_gauge_turns_half_open_without_calls(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """When the break ends, the gauge shows half-open before any new call."""
        upstream.script(Reply.json({"message": "down"}, 503))
        proxy = make_proxy(upstream.url, **self.BREAKER)
        for _ in range(4):
            with pytest.raises(ServiceServerError):
                await proxy.get("/x")
        opened = sample(registry, "service_circuit_state", service=SERVICE)

        await asyncio.sleep(0.3)

        assert opened == 1
        assert sample(registry, "service_circuit_state", service=SERVICE) == 2
        assert upstream.hits == 4

    async def test_circuit_breaker_reopens_on_probe_failure(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """A failed probe opens the circuit again."""
        proxy = await self.half_open_proxy(upstream, make_proxy)

        with pytest.raises(ServiceServerError):
            await proxy.get("/x")

        assert sample(registry, "service_circuit_state", service=SERVICE) == 1

    async def test_circuit_breaker_ignores_4xx(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """404s are responses, not failures, so the circuit stays closed."""
        upstream.script(Reply.json({"message": "no"}, 404))
        proxy = make_proxy(upstream.url, **self.BREAKER)

        for _ in range(10):
            with pytest.raises(ServiceClientError):
                await proxy.get("/x")

        assert upstream.hits == 10
        assert sample(registry, "service_circuit_state", service=SERVICE) == 0

    async def test_circuit_breaker_counts_timeouts(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """Timeouts count as failures."""
        upstream.script(Reply(hang=True))
        proxy = make_proxy(upstream.url, timeout=0.05, **self.BREAKER)

        for _ in range(4):
            with pytest.raises(ServiceTimeoutError):
                await proxy.get("/x")

        assert sample(registry, "service_circuit_state", service=SERVICE) == 1


class TestBulkhead:
    """Calls past the bulkhead's bounds are rejected at once."""

    async def test_bulkhead_rejects_past_queue(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """With 2 slots and a queue of 1, 2 of 5 concurrent calls are rejected."""
        upstream.script(Reply(delay_headers=0.2, body={"ok": True}))
        proxy = make_proxy(
            upstream.url,
            bulkhead_max_concurrent=2,
            bulkhead_max_queue=1,
            **PLAIN,
        )

        results = await asyncio.gather(
            *(proxy.get("/x") for _ in range(5)), return_exceptions=True
        )

        rejections = [r for r in results if isinstance(r, BulkheadFullError)]
        assert len(rejections) == 2
        assert upstream.hits == 3
        assert rejected(registry, "bulkhead_full") == 2


class TestReadCache:
    """Cached reads: coalescing, invalidation and stale-if-error."""

    async def test_cache_coalesces_concurrent_identical_reads(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """100 concurrent get_user calls of one id reach the upstream once."""
        upstream.script(Reply(delay_headers=0.05, body=USER_JSON))
        proxy: UserServiceProxy = make_proxy(
            upstream.url, cache_ttl={"get_user": 30.0}, **PLAIN
        )

        users = await asyncio.gather(*(proxy.get_user("1") for _ in range(100)))

        assert upstream.hits == 1
        assert {user.id for user in users} == {"1"}
        misses = sample(
            registry, "service_cache_requests_total", service=SERVICE, result="miss"
        )
        assert misses == 100

    async def test_cached_read_is_a_hit(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """A second read within the time to live does not reach the upstream."""
        upstream.script(Reply.json(USER_JSON))
        proxy: UserServiceProxy = make_proxy(
            upstream.url, cache_ttl={"get_user": 30.0}, **PLAIN
        )

        await proxy.get_user("1")
        await proxy.get_user("1")

        assert upstream.hits == 1
        hits = sample(
            registry, "service_cache_requests_total", service=SERVICE, result="hit"
        )
        assert hits == 1

    async def test_uncached_method_always_calls(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A read method without a time to live is never cached."""
        upstream.script(Reply.json(USER_JSON))
        proxy: UserServiceProxy = make_proxy(upstream.url, **PLAIN)

        await proxy.get_user("1")
        await proxy.get_user("1")

        assert upstream.hits == 2

    async def test_write_invalidates_cached_reads(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A profile update through the proxy drops the cached user."""
        profile = {
            "userId": "1",
            "bio": "b",
            "company": "c",
            "position": "p",
            "timezone": "UTC",
            "avatarUrl": None,
            "updatedAt": "2026-01-01T00:00:00Z",
        }
        upstream.route("/users/1", Reply.json(USER_JSON))
        upstream.route("/users/1/profile", Reply.json(profile))
        proxy: UserServiceProxy = make_proxy(
            upstream.url, cache_ttl={"get_user": 30.0}, **PLAIN
        )

        await proxy.get_user("1")
        await proxy.update_user_profile("1", {"bio": "new"})
        await proxy.get_user("1")

        assert upstream.hits_for("/users/1") == 2

    async def test_write_invalidates_int_id_read(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A read by the int 1 and a write to "1" use one cache entry."""
        upstream.route("/users/1", Reply.json(USER_JSON))
        upstream.route("/users/1/profile", Reply.json({"error": "gone"}, status=404))
        proxy: UserServiceProxy = make_proxy(
            upstream.url, cache_ttl={"get_user": 30.0}, **PLAIN
        )
        user_id: Any = 1

        await proxy.get_user(user_id)
        await proxy.get_user("1")
        assert upstream.hits_for("/users/1") == 1
        # A failed write drops the entry too, because it may have applied.
        with pytest.raises(ServiceClientError):
            await proxy.update_user_profile("1", {"bio": "new"})
        await proxy.get_user(user_id)

        assert upstream.hits_for("/users/1") == 2

    async def test_stale_value_serves_when_service_fails(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """After the time to live, a failing service gets the last good value."""
        upstream.script(Reply.json(USER_JSON))
        proxy: UserServiceProxy = make_proxy(
            upstream.url,
            cache_ttl={"get_user": 0.05},
            cache_stale_if_error=30.0,
            **PLAIN,
        )
        await proxy.get_user("1")
        await asyncio.sleep(0.08)
        upstream.script(Reply.json({"message": "down"}, 503))

        user = await proxy.get_user("1")

        assert user.id == "1"
        stale = sample(
            registry, "service_cache_requests_total", service=SERVICE, result="stale"
        )
        assert stale == 1

    async def test_stale_value_not_served_for_404(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A 404 after expiry means the user is gone: no stale value."""
        upstream.script(Reply.json(USER_JSON))
        proxy: UserServiceProxy = make_proxy(
            upstream.url,
            cache_ttl={"get_user": 0.05},
            cache_stale_if_error=30.0,
            **PLAIN,
        )
        await proxy.get_user("1")
        await asyncio.sleep(0.08)
        upstream.script(Reply.json({"message": "gone"}, 404))

        with pytest.raises(ServiceClientError):
            await proxy.get_user("1")

    def test_unknown_cached_method_is_rejected(self, make_proxy: ProxyFactory) -> None:
        """A cache_ttl entry for a method that cannot be cached fails at start."""
        with pytest.raises(ValueError, match="update_user_profile"):
            make_proxy("http://127.0.0.1:1", cache_ttl={"update_user_profile": 5})

    async def test_joined_read_keeps_its_own_deadline(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A caller that joins a slow shared load gives up at its own deadline."""
        upstream.script(Reply(delay_headers=0.4, body=USER_JSON))
        proxy: UserServiceProxy = make_proxy(
            upstream.url, cache_ttl={"get_user": 30.0}, **PLAIN
        )
        leader = asyncio.ensure_future(proxy.get_user("1"))
        await asyncio.sleep(0.05)
        started = time.perf_counter()

        with deadline_scope(0.1), pytest.raises(ServiceDeadlineError):
            await proxy.get_user("1")

        assert time.perf_counter() - started < 0.3
        assert (await leader).id == "1"
        assert upstream.hits == 1


class TestSharedReads:
    """Coalesced cached reads keep every caller's own limits."""

    async def test_short_deadline_does_not_fail_others(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A caller with a short deadline cannot make a joined caller fail."""
        upstream.script(Reply(delay_headers=0.2, body=USER_JSON))
        proxy: UserServiceProxy = make_proxy(
            upstream.url, cache_ttl={"get_user": 30.0}, **PLAIN
        )

        async def impatient() -> None:
            with deadline_scope(0.05):
                await proxy.get_user("1")

        async def patient() -> str:
            await asyncio.sleep(0.01)
            return (await proxy.get_user("1")).id

        results = await asyncio.gather(impatient(), patient(), return_exceptions=True)

        assert isinstance(results[0], ServiceDeadlineError)
        assert results[1] == "1"
        # The shared call ended on the impatient deadline; the patient caller
        # started it again on its own.
        assert upstream.hits == 2

    async def test_deadline_option_bounds_a_joined_read(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """The deadline= option bounds the wait on another caller's load."""
        upstream.script(Reply(delay_headers=0.5, body=USER_JSON))
        proxy: UserServiceProxy = make_proxy(
            upstream.url, cache_ttl={"get_user": 30.0}, **PLAIN
        )
        first = asyncio.ensure_future(proxy.get_user("1"))
        await asyncio.sleep(0.02)
        started = time.perf_counter()

        with pytest.raises(ServiceDeadlineError) as caught:
            await proxy.get_user("1", deadline=0.05)

        assert time.perf_counter() - started < 0.3
        assert caught.value.path == "/users/1"
        await first

    async def test_call_headers_bypass_the_cache(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A read with its own headers never shares another caller's response."""
        upstream.script(Reply.json(USER_JSON))
        proxy: UserServiceProxy = make_proxy(
            upstream.url, cache_ttl={"get_user": 30.0}, **PLAIN
        )

        await proxy.get_user("1", headers={"Authorization": "Bearer alice"})
        await proxy.get_user("1", headers={"Authorization": "Bearer mallory"})

        tokens = [request.headers["authorization"] for request in upstream.requests]
        assert tokens == ["Bearer alice", "Bearer mallory"]

    async def test_attempt_timeout_stays_a_timeout(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A cached read whose attempt times out reports a timeout, not a deadline."""
        upstream.script(Reply(hang=True))
        proxy: UserServiceProxy = make_proxy(
            upstream.url, timeout=0.2, retries=0, cache_ttl={"get_user": 30.0}, **PLAIN
        )

        with pytest.raises(ServiceTimeoutError) as caught:
            await proxy.get_user("1")

        assert not isinstance(caught.value, ServiceDeadlineError)
        assert caught.value.path == "/users/1"

    async def test_stale_value_serves_when_deadline_ends_wait(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A reader whose deadline ends the wait gets the stale value."""
        upstream.script(Reply.json(USER_JSON))
        proxy: UserServiceProxy = make_proxy(
            upstream.url,
            timeout=1.0,
            retries=0,
            cache_ttl={"get_user": 0.01},
            cache_stale_if_error=30.0,
            **PLAIN,
        )
        await proxy.get_user("1")
        await asyncio.sleep(0.02)
        upstream.script(Reply(hang=True))

        for _ in range(5):
            with deadline_scope(0.05):
                user = await proxy.get_user("1")
            assert user.id == "1"


class TestBudgetUnderPartialOutage:
    """The budget grows with traffic."""

    async def test_ratio_applies_beyond_the_reserve(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """With half the requests failing, retries exceed the reserve of 10."""
        upstream.script(
            *[Reply.json({"message": "down"}, 503), Reply.json({"ok": True})] * 2000
        )
        proxy = make_proxy(
            upstream.url,
            retries=3,
            backoff_initial=0.0,
            backoff_max=0.0,
            breaker_enabled=False,
            bulkhead_enabled=False,
            budget_ratio=0.2,
            budget_min_retries=10,
        )
        calls = 500

        await asyncio.gather(
            *(proxy.get("/x") for _ in range(calls)), return_exceptions=True
        )

        retries = upstream.hits - calls
        assert retries > 10
        assert retries <= 0.2 * calls + 1


class TestBreakerAndDeadlines:
    """Attempts cut by callers' deadlines still inform the breaker."""

    BREAKER: ClassVar[dict[str, Any]] = {
        "retries": 0,
        "budget_enabled": False,
        "timeout": 2.0,
        "breaker_minimum_calls": 4,
        "breaker_break_duration": 2.0,
        "breaker_half_open_probes": 2,
        "breaker_slow_call": 0.1,
    }

    async def test_slow_cut_calls_open_the_circuit(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """A hanging upstream opens the circuit although deadlines cut each call."""
        upstream.script(Reply(hang=True))
        proxy = make_proxy(upstream.url, **self.BREAKER)

        for _ in range(4):
            with pytest.raises(ServiceDeadlineError):
                await proxy.get("/x", deadline=0.15)

        assert sample(registry, "service_circuit_state", service=SERVICE) == 1

    async def test_quick_cut_calls_do_not_count(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """Deadlines shorter than breaker_slow_call leave the circuit closed."""
        upstream.script(Reply(hang=True))
        proxy = make_proxy(upstream.url, **self.BREAKER)

        for _ in range(6):
            with pytest.raises(ServiceDeadlineError):
                await proxy.get("/x", deadline=0.03)

        assert sample(registry, "service_circuit_state", service=SERVICE) == 0


class TestSharedReadDeadline:
    """A shared read never outlives the request that started it."""

    async def test_refused_cached_read_fails_fast(
        self, make_proxy: ProxyFactory
    ) -> None:
        """A refused cached read fails as a connection error inside the deadline."""
        proxy: UserServiceProxy = make_proxy(
            closed_port_url(),
            timeout=0.2,
            retries=3,
            backoff_initial=0.1,
            backoff_max=0.1,
            cache_ttl={"get_user": 30.0},
            **PLAIN,
        )
        started = time.perf_counter()

        with deadline_scope(1.0), pytest.raises(ServiceConnectionError):
            await proxy.get_user("1")

        assert time.perf_counter() - started < 1.0


async def test_cache_enabled_false_turns_caching_off(
    upstream: ScriptedUpstream, make_proxy: ProxyFactory
) -> None:
    """cache_enabled false wins over cache_ttl entries."""
    upstream.script(Reply.json(USER_JSON))
    proxy: UserServiceProxy = make_proxy(
        upstream.url, cache_enabled=False, cache_ttl={"get_user": 30.0}, **PLAIN
    )

    await proxy.get_user("1")
    await proxy.get_user("1")

    assert upstream.hits == 2
