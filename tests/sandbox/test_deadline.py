"""Tests for the X-Request-Deadline-Ms budget of the sandbox services."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from app.sandbox import create_interview_service_app, create_user_service_app
from app.sandbox.common import make_error_middleware
from app.sandbox.data import seed_users
from app.sandbox.deadline import make_deadline_middleware, parse_deadline
from app.sandbox.idempotency import REPLAYED_HEADER
from tests.sandbox.support import call, serve

FIRST_USER = seed_users(7)["1"]
RESERVE = "/users/1/quota/reservations"
STATS = "/users/1/stats"
LATENCY_MS = 300


def deadline(budget: str) -> dict[str, str]:
    """Build the header that sends ``budget`` milliseconds."""
    return {"X-Request-Deadline-Ms": budget}


@pytest.fixture
async def slow_users() -> AsyncIterator[aiohttp.ClientSession]:
    """Serve a user-service that delays every response by LATENCY_MS."""
    async with serve(create_user_service_app(latency_ms=LATENCY_MS)) as session:
        yield session


class TestZeroBudget:
    """A budget of zero gives 504 before any work."""

    async def test_zero_gives_504(self, users: aiohttp.ClientSession) -> None:
        """A zero budget returns 504 with its own message."""
        status, body = await call(users, "POST", RESERVE, headers=deadline("0"))
        assert status == 504
        assert body == {"message": "deadline exceeded before the work started"}

    async def test_zero_changes_nothing(self, users: aiohttp.ClientSession) -> None:
        """A reservation with a zero budget leaves quotaUsed as it was."""
        await call(users, "POST", RESERVE, headers=deadline("0"))
        _, stats = await call(users, "GET", STATS)
        assert stats["quotaUsed"] == FIRST_USER.quota_used

    async def test_zero_skips_latency(self, slow_users: aiohttp.ClientSession) -> None:
        """A zero budget returns before the latency delay."""
        started = time.monotonic()
        status, _ = await call(slow_users, "GET", "/users/1", headers=deadline("0"))
        elapsed = time.monotonic() - started
        assert status == 504
        assert elapsed < LATENCY_MS / 1000

    async def test_interview_service_honours_it(self) -> None:
        """interview-service runs the same deadline middleware."""
        async with serve(create_interview_service_app()) as session:
            status, _ = await call(
                session, "GET", "/interviews/iv-0001", headers=deadline("0")
            )
        assert status == 504


class TestExpiry:
    """A budget shorter than the work gives 504 and commits nothing."""

    async def test_latency_over_budget_gives_504(
        self, slow_users: aiohttp.ClientSession
    ) -> None:
        """A budget below the latency returns 504 "deadline exceeded"."""
        status, body = await call(slow_users, "POST", RESERVE, headers=deadline("50"))
        assert status == 504
        assert body == {"message": "deadline exceeded"}

    async def test_expiry_is_prompt(self, slow_users: aiohttp.ClientSession) -> None:
        """The 504 comes when the budget ends, not after the latency."""
        started = time.monotonic()
        await call(slow_users, "POST", RESERVE, headers=deadline("50"))
        elapsed = time.monotonic() - started
        assert elapsed < LATENCY_MS / 1000

    async def test_expiry_changes_nothing(
        self, slow_users: aiohttp.ClientSession
    ) -> None:
        """A reservation cut short leaves quotaUsed as it was."""
        await call(slow_users, "POST", RESERVE, headers=deadline("50"))
        _, stats = await call(slow_users, "GET", STATS)
        assert stats["quotaUsed"] == FIRST_USER.quota_used

    async def test_retry_with_same_key_runs(
        self, slow_users: aiohttp.ClientSession
    ) -> None:
        """The Idempotency-Key store keeps no 504, so a retry does the work."""
        key = {"Idempotency-Key": "deadline-retry"}
        await call(slow_users, "POST", RESERVE, headers={**key, **deadline("50")})
        async with slow_users.post(RESERVE, headers=key) as response:
            body = await response.json()
            replayed = response.headers.get(REPLAYED_HEADER)
            status = response.status
        assert status == 201
        assert replayed is None
        assert body["quotaUsed"] == FIRST_USER.quota_used + 1

    async def test_handler_timeout_is_not_deadline(self) -> None:
        """A TimeoutError that a handler raises itself stays a 500."""

        async def time_out(request: web.Request) -> web.Response:
            raise TimeoutError

        app = web.Application(
            middlewares=[make_error_middleware("test"), make_deadline_middleware()]
        )
        app.router.add_get("/", time_out)
        async with serve(app) as session:
            status, _ = await call(session, "GET", "/", headers=deadline("5000"))
        assert status == 500


class TestWithinBudget:
    """A budget longer than the work, or no budget, changes nothing."""

    async def test_budget_over_latency_succeeds(
        self, slow_users: aiohttp.ClientSession
    ) -> None:
        """A budget above the latency returns the normal 201."""
        status, body = await call(slow_users, "POST", RESERVE, headers=deadline("5000"))
        assert status == 201
        assert body["quotaUsed"] == FIRST_USER.quota_used + 1

    async def test_missing_header_succeeds(self, users: aiohttp.ClientSession) -> None:
        """A request without the header runs without a deadline."""
        status, _ = await call(users, "POST", RESERVE)
        assert status == 201


class TestMalformed:
    """A deadline that is not a non-negative integer gives 400."""

    @pytest.mark.parametrize(
        "budget", ["abc", "1.5", "", "+5", "1e3", "5ms", "1234567890123456789"]
    )
    async def test_malformed_gives_400(
        self, users: aiohttp.ClientSession, budget: str
    ) -> None:
        """A value that is not an integer of at most 18 digits returns 400."""
        status, body = await call(users, "POST", RESERVE, headers=deadline(budget))
        assert status == 400
        assert "X-Request-Deadline-Ms" in body["message"]

    async def test_negative_gives_400(self, users: aiohttp.ClientSession) -> None:
        """A negative value returns 400 naming the value."""
        status, body = await call(users, "POST", RESERVE, headers=deadline("-5"))
        assert status == 400
        assert body == {
            "message": "Header 'X-Request-Deadline-Ms' must be zero or positive, "
            "got -5."
        }

    async def test_malformed_changes_nothing(
        self, users: aiohttp.ClientSession
    ) -> None:
        """A rejected deadline leaves quotaUsed as it was."""
        await call(users, "POST", RESERVE, headers=deadline("soon"))
        _, stats = await call(users, "GET", STATS)
        assert stats["quotaUsed"] == FIRST_USER.quota_used


class TestParseDeadline:
    """parse_deadline reads the header value."""

    def test_missing_is_none(self) -> None:
        """No header means no deadline."""
        assert parse_deadline(None) is None

    def test_integer_is_milliseconds(self) -> None:
        """An integer is returned as milliseconds."""
        assert parse_deadline("250") == 250

    def test_largest_value(self) -> None:
        """Eighteen digits are accepted."""
        assert parse_deadline("9" * 18) == 10**18 - 1
