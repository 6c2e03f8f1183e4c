"""Tests for the faults that tests inject into the sandbox services."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from app.sandbox import (
    SandboxFaults,
    create_interview_service_app,
    create_user_service_app,
)
from app.sandbox.data import seed_users
from app.sandbox.faults import (
    INTERVIEW_ROUTE_NAMES,
    MAX_QUEUED_FAULTS,
    MAX_TIMES,
    ROUTE_NAMES,
    USER_ROUTE_NAMES,
)
from app.sandbox.idempotency import REPLAYED_HEADER
from tests.helpers import serve_app
from tests.sandbox.support import call, serve

FIRST_USER = seed_users(7)["1"]
RESERVE = "/users/1/quota/reservations"
STATS = "/users/1/stats"
DISCONNECTS = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
NEW_INTERVIEW = {"userId": "1", "title": "Backend engineer"}


@pytest.fixture
def faults() -> SandboxFaults:
    """Give each test an empty set of faults."""
    return SandboxFaults()


@pytest.fixture
async def users(faults: SandboxFaults) -> AsyncIterator[aiohttp.ClientSession]:
    """Serve a fresh user-service with the test's faults."""
    async with serve(create_user_service_app(faults=faults)) as session:
        yield session


@pytest.fixture
async def interviews(faults: SandboxFaults) -> AsyncIterator[aiohttp.ClientSession]:
    """Serve a fresh interview-service with the test's faults."""
    async with serve(create_interview_service_app(faults=faults)) as session:
        yield session


async def quota_used(session: aiohttp.ClientSession) -> int:
    """Read quotaUsed of user 1."""
    _, stats = await call(session, "GET", STATS)
    used: int = stats["quotaUsed"]
    return used


class TestDropAfterCommit:
    """A dropped request commits its work, then the connection closes."""

    async def test_replay_after_drop(self, faults: SandboxFaults) -> None:
        """A retry with the dropped request's key replays the first reservation."""
        faults.drop_after_commit("reserve_quota")
        key = {"Idempotency-Key": "k"}
        app = create_user_service_app(faults=faults)
        async with serve_app(app) as base_url, aiohttp.ClientSession() as session:
            with pytest.raises(DISCONNECTS):
                async with session.post(base_url + RESERVE, headers=key) as response:
                    await response.read()

            async with session.post(base_url + RESERVE, headers=key) as response:
                status = response.status
                replayed = response.headers.get(REPLAYED_HEADER)
                reservation = await response.json()
            async with session.get(base_url + STATS) as response:
                stats = await response.json()

        assert status == 201
        assert replayed == "true"
        assert reservation["reservationId"] == "res-000001"
        assert reservation["quotaUsed"] == FIRST_USER.quota_used + 1
        assert stats["quotaUsed"] == FIRST_USER.quota_used + 1

    async def test_drop_without_key_commits(
        self, faults: SandboxFaults, interviews: aiohttp.ClientSession
    ) -> None:
        """A dropped create without a key still creates the interview."""
        faults.drop_after_commit("create_interview")
        _, before = await call(interviews, "GET", "/users/1/interviews")
        with pytest.raises(DISCONNECTS):
            await call(interviews, "POST", "/interviews", json=NEW_INTERVIEW)

        _, after = await call(interviews, "GET", "/users/1/interviews")
        assert after["total"] == before["total"] + 1

    async def test_drop_after_error(
        self, faults: SandboxFaults, users: aiohttp.ClientSession
    ) -> None:
        """A request that fails with 404 is dropped as well."""
        faults.drop_after_commit("reserve_quota")
        with pytest.raises(DISCONNECTS):
            await call(users, "POST", "/users/999/quota/reservations")
        assert faults.pending("reserve_quota") == 0

    async def test_times_counts_requests(
        self, faults: SandboxFaults, users: aiohttp.ClientSession
    ) -> None:
        """With times=2 two requests are dropped and the third succeeds."""
        faults.drop_after_commit("reserve_quota", times=2)
        for _ in range(2):
            with pytest.raises(DISCONNECTS):
                await call(users, "POST", RESERVE)

        status, body = await call(users, "POST", RESERVE)
        assert status == 201
        assert body["quotaUsed"] == FIRST_USER.quota_used + 3

    async def test_client_resends_dropped_get(
        self, faults: SandboxFaults, users: aiohttp.ClientSession
    ) -> None:
        """aiohttp's client resends a GET dropped once and gets the 200."""
        faults.drop_after_commit("get_user")
        status, _ = await call(users, "GET", "/users/1")
        assert status == 200
        assert faults.pending("get_user") == 0

    async def test_other_routes_unaffected(
        self, faults: SandboxFaults, users: aiohttp.ClientSession
    ) -> None:
        """A fault on one route leaves the other routes alone."""
        faults.drop_after_commit("reserve_quota")
        status, _ = await call(users, "GET", "/users/1")
        assert status == 200
        assert faults.pending("reserve_quota") == 1


class TestFail:
    """An injected failure returns at once and does no work."""

    async def test_status_and_message(
        self, faults: SandboxFaults, users: aiohttp.ClientSession
    ) -> None:
        """The failure returns the status with a JSON message naming the route."""
        faults.fail("reserve_quota", 503)
        status, body = await call(users, "POST", RESERVE)
        assert status == 503
        assert body == {
            "message": "Route 'reserve_quota' returned 503 because a test injected it."
        }

    async def test_retry_after_header(
        self, faults: SandboxFaults, users: aiohttp.ClientSession
    ) -> None:
        """A given retry_after is sent as the Retry-After header."""
        faults.fail("get_user", 429, retry_after="2")
        async with users.get("/users/1") as response:
            assert response.status == 429
            assert response.headers["Retry-After"] == "2"

    async def test_no_retry_after_by_default(
        self, faults: SandboxFaults, users: aiohttp.ClientSession
    ) -> None:
        """Without retry_after no Retry-After header is sent."""
        faults.fail("get_user", 503)
        async with users.get("/users/1") as response:
            assert "Retry-After" not in response.headers

    async def test_no_work_done(
        self, faults: SandboxFaults, users: aiohttp.ClientSession
    ) -> None:
        """A failed reservation leaves quotaUsed as it was."""
        faults.fail("reserve_quota", 500)
        await call(users, "POST", RESERVE)
        assert await quota_used(users) == FIRST_USER.quota_used

    async def test_failure_not_stored_for_key(
        self, faults: SandboxFaults, users: aiohttp.ClientSession
    ) -> None:
        """A retry with the key of an injected failure does the work."""
        faults.fail("reserve_quota", 503)
        key = {"Idempotency-Key": "fail-then-retry"}
        await call(users, "POST", RESERVE, headers=key)
        async with users.post(RESERVE, headers=key) as response:
            status = response.status
            replayed = response.headers.get(REPLAYED_HEADER)
        assert status == 201
        assert replayed is None

    async def test_times_counts_requests(
        self, faults: SandboxFaults, users: aiohttp.ClientSession
    ) -> None:
        """With times=2 two requests fail and the third succeeds."""
        faults.fail("get_user", 503, times=2)
        statuses = [(await call(users, "GET", "/users/1"))[0] for _ in range(3)]
        assert statuses == [503, 503, 200]

    async def test_exact_under_concurrency(
        self, faults: SandboxFaults, users: aiohttp.ClientSession
    ) -> None:
        """Of 20 concurrent requests exactly `times` fail."""
        faults.fail("get_user", 503, times=3)
        results = await asyncio.gather(
            *(call(users, "GET", "/users/1") for _ in range(20))
        )
        statuses = [status for status, _ in results]
        assert statuses.count(503) == 3
        assert statuses.count(200) == 17

    async def test_faults_apply_in_order(
        self, faults: SandboxFaults, users: aiohttp.ClientSession
    ) -> None:
        """Faults queued for one route apply in the order they were queued."""
        faults.fail("reserve_quota", 503)
        faults.drop_after_commit("reserve_quota")
        status, _ = await call(users, "POST", RESERVE)
        with pytest.raises(DISCONNECTS):
            await call(users, "POST", RESERVE)
        assert status == 503
        assert await quota_used(users) == FIRST_USER.quota_used + 1

    async def test_shared_between_services(self, faults: SandboxFaults) -> None:
        """One SandboxFaults serves both services, since route names are unique."""
        faults.fail("create_interview", 502)
        users_app = create_user_service_app(faults=faults)
        interviews_app = create_interview_service_app(faults=faults)
        async with serve(users_app) as users, serve(interviews_app) as interviews:
            user_status, _ = await call(users, "GET", "/users/1")
            interview_status, _ = await call(
                interviews, "POST", "/interviews", json=NEW_INTERVIEW
            )
        assert user_status == 200
        assert interview_status == 502


class TestState:
    """SandboxFaults validates its input and keeps its state small."""

    def test_pending_counts_down(self, faults: SandboxFaults) -> None:
        """pending() sums the remaining uses of every queued fault."""
        faults.fail("get_user", 503, times=2)
        faults.drop_after_commit("get_user")
        faults.take("get_user")
        assert faults.pending("get_user") == 2

    def test_clear_drops_everything(self, faults: SandboxFaults) -> None:
        """clear() removes every queued fault."""
        faults.fail("get_user", 503, times=5)
        faults.clear()
        assert faults.pending("get_user") == 0

    def test_take_without_fault_is_none(self, faults: SandboxFaults) -> None:
        """A route with nothing queued takes no fault."""
        assert faults.take("get_user") is None

    def test_unknown_route_raises(self, faults: SandboxFaults) -> None:
        """A route name that no sandbox route has is rejected."""
        with pytest.raises(ValueError, match="unknown route name 'get_users'"):
            faults.drop_after_commit("get_users")

    @pytest.mark.parametrize("times", [0, -1, MAX_TIMES + 1])
    def test_times_out_of_range_raises(self, faults: SandboxFaults, times: int) -> None:
        """times must lie between 1 and MAX_TIMES."""
        with pytest.raises(ValueError, match="times must be between"):
            faults.fail("get_user", 503, times=times)

    @pytest.mark.parametrize("status", [200, 302, 399, 600])
    def test_non_error_status_raises(self, faults: SandboxFaults, status: int) -> None:
        """Only error statuses 400-599 can be injected."""
        with pytest.raises(ValueError, match="error status"):
            faults.fail("get_user", status)

    @pytest.mark.parametrize("value", ["", " ", "1\r\nX-Evil: 1", "zwei\u00df"])
    def test_bad_retry_after_raises(self, faults: SandboxFaults, value: str) -> None:
        """A Retry-After value that cannot be a header value is rejected."""
        with pytest.raises(ValueError, match="retry_after"):
            faults.fail("get_user", 503, retry_after=value)

    def test_queue_is_bounded(self, faults: SandboxFaults) -> None:
        """A route queues at most MAX_QUEUED_FAULTS faults."""
        for _ in range(MAX_QUEUED_FAULTS):
            faults.fail("get_user", 503)
        with pytest.raises(ValueError, match="already has"):
            faults.fail("get_user", 503)

    def test_exact_across_threads(self, faults: SandboxFaults) -> None:
        """Threads that take concurrently consume each use exactly once."""
        faults.fail("get_user", 503, times=MAX_TIMES)
        counts: list[int] = []

        def take_all() -> None:
            count = 0
            for _ in range(MAX_TIMES):
                if faults.take("get_user") is not None:
                    count += 1
            counts.append(count)

        threads = [threading.Thread(target=take_all) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert sum(counts) == MAX_TIMES


class TestRouteNames:
    """Every sandbox route has a stable name that SandboxFaults accepts."""

    @staticmethod
    def _names(app: web.Application) -> set[str | None]:
        return {resource.name for resource in app.router.resources()}

    def test_user_service_names(self) -> None:
        """user-service names every route, with the names SandboxFaults lists."""
        assert self._names(create_user_service_app()) == USER_ROUTE_NAMES

    def test_interview_service_names(self) -> None:
        """interview-service names every route, with the names SandboxFaults lists."""
        assert self._names(create_interview_service_app()) == INTERVIEW_ROUTE_NAMES

    def test_names_unique_across_services(self) -> None:
        """No route name is used by both services."""
        assert not USER_ROUTE_NAMES & INTERVIEW_ROUTE_NAMES

    def test_docstring_lists_every_name(self) -> None:
        """The SandboxFaults docstring names every route."""
        doc = SandboxFaults.__doc__ or ""
        missing = {name for name in ROUTE_NAMES if f"``{name}``" not in doc}
        assert missing == set()

    def test_no_faults_middleware_by_default(self) -> None:
        """Without faults the app runs one middleware fewer."""
        plain = create_user_service_app()
        faulty = create_user_service_app(faults=SandboxFaults())
        assert len(faulty.middlewares) == len(plain.middlewares) + 1
