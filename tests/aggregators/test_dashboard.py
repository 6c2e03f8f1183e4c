"""DashboardAggregator against the sandbox and against fakes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from unittest.mock import AsyncMock

import pytest

from app.aggregators import DashboardAggregator
from app.aggregators.dashboard import DASHBOARD_INTERVIEWS_LIMIT
from app.metrics import ProxyMetrics
from app.models import InterviewList, User
from app.proxies import (
    InterviewServiceProxy,
    ServiceClientError,
    ServiceServerError,
    ServiceTimeoutError,
    UserServiceProxy,
)
from tests.conftest import ProxyFactory
from tests.helpers import USER_JSON, Sandbox, run_sandbox_apps

USER = User.model_validate(USER_JSON)


def build_aggregator(make_proxy: ProxyFactory, sandbox: Sandbox) -> DashboardAggregator:
    """Build an aggregator with real proxies aimed at the sandbox."""
    return DashboardAggregator(
        make_proxy(sandbox.user_url, UserServiceProxy),
        make_proxy(sandbox.interview_url, InterviewServiceProxy),
    )


def hanging_parts(
    cancelled: list[str],
) -> tuple[Callable[[str], Awaitable[Any]], Callable[[str, int], Awaitable[Any]]]:
    """Return stats and interviews calls that wait until cancelled.

    Each appends its part's name to ``cancelled`` when it is cancelled.
    """
    never = asyncio.Event()

    async def wait_forever(name: str) -> None:
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    async def stats_forever(user_id: str) -> Any:
        await wait_forever("stats")

    async def interviews_forever(user_id: str, limit: int) -> Any:
        await wait_forever("interviews")

    return stats_forever, interviews_forever


class TestDashboard:
    """Dashboards built over real HTTP."""

    async def test_dashboard_has_user_interviews_and_stats(
        self, make_proxy: ProxyFactory, sandbox: Sandbox
    ) -> None:
        """A seeded user's dashboard has the user, at most 10 interviews and stats."""
        aggregator = build_aggregator(make_proxy, sandbox)

        dashboard = await aggregator.get_user_dashboard("1")

        assert dashboard.user.id == "1"
        assert dashboard.stats is not None
        assert dashboard.stats.user_id == "1"
        assert dashboard.interviews is not None
        assert 0 < len(dashboard.interviews) <= DASHBOARD_INTERVIEWS_LIMIT
        assert {interview.user_id for interview in dashboard.interviews} == {"1"}
        assert dashboard.errors == []

    async def test_calls_run_in_parallel(self, make_proxy: ProxyFactory) -> None:
        """With 200 ms of upstream latency the three calls end in under 300 ms."""
        async with run_sandbox_apps(latency_ms=200) as slow:
            aggregator = build_aggregator(make_proxy, slow)
            # The first call opens connections; time the second one.
            await aggregator.get_user_dashboard("2")
            started = time.perf_counter()
            await aggregator.get_user_dashboard("1")
            elapsed = time.perf_counter() - started

        # Three sequential calls would take at least 600 ms.
        assert elapsed < 0.3

    async def test_unknown_user_raises_404(
        self, make_proxy: ProxyFactory, sandbox: Sandbox
    ) -> None:
        """An unknown user id raises ServiceClientError with status 404."""
        aggregator = build_aggregator(make_proxy, sandbox)

        with pytest.raises(ServiceClientError) as caught:
            await aggregator.get_user_dashboard("no-such-user")

        assert caught.value.status_code == 404
        assert caught.value.service_name == "user-service"


class TestFailure:
    """A failed user cancels the rest; failed optional parts degrade."""

    async def test_optional_failures_degrade(self) -> None:
        """Failing interviews and stats give None parts and two error entries."""
        users = AsyncMock(spec=UserServiceProxy)
        users.get_user.return_value = USER
        users.get_user_stats.side_effect = ServiceTimeoutError(
            "user-service", None, "slow"
        )
        interviews = AsyncMock(spec=InterviewServiceProxy)
        interviews.get_user_interviews.side_effect = ServiceServerError(
            "interview-service", 502, "bad gateway"
        )

        dashboard = await DashboardAggregator(users, interviews).get_user_dashboard("1")

        assert dashboard.user == USER
        assert dashboard.interviews is None
        assert dashboard.stats is None
        kinds = {(error.part, error.service, error.kind) for error in dashboard.errors}
        assert kinds == {
            ("interviews", "interview-service", "server_error"),
            ("stats", "user-service", "timeout"),
        }

    async def test_programming_error_in_optional_part_is_raised(self) -> None:
        """Only service failures degrade; a bug in an optional call propagates."""
        users = AsyncMock(spec=UserServiceProxy)
        users.get_user.return_value = USER
        users.get_user_stats.side_effect = KeyError("bug")
        interviews = AsyncMock(spec=InterviewServiceProxy)
        interviews.get_user_interviews.return_value = InterviewList(
            interviews=[], total=0
        )

        with pytest.raises(KeyError):
            await DashboardAggregator(users, interviews).get_user_dashboard("1")

    async def test_cancelled_dashboard_leaves_no_part_running(
        self, metrics: ProxyMetrics
    ) -> None:
        """A dashboard cancelled while waiting for a part cancels every part."""
        cancelled: list[str] = []
        stats_forever, interviews_forever = hanging_parts(cancelled)

        users = AsyncMock(spec=UserServiceProxy)
        users.get_user.return_value = USER
        users.get_user_stats.side_effect = stats_forever
        interviews = AsyncMock(spec=InterviewServiceProxy)
        interviews.get_user_interviews.side_effect = interviews_forever
        dashboard = asyncio.ensure_future(
            DashboardAggregator(users, interviews).get_user_dashboard("1")
        )
        await asyncio.sleep(0.01)

        dashboard.cancel()

        with pytest.raises(asyncio.CancelledError):
            await dashboard
        assert sorted(cancelled) == ["interviews", "stats"]
        leftover = [
            task for task in asyncio.all_tasks() if task is not asyncio.current_task()
        ]
        assert leftover == []

    async def test_failure_cancels_siblings(self, metrics: ProxyMetrics) -> None:
        """No sibling call is left running after the first failure."""
        cancelled: list[str] = []
        stats_forever, interviews_forever = hanging_parts(cancelled)

        users = AsyncMock(spec=UserServiceProxy)
        users.get_user.side_effect = ServiceClientError(
            "user-service", 404, {"message": "user not found"}
        )
        users.get_user_stats.side_effect = stats_forever
        interviews = AsyncMock(spec=InterviewServiceProxy)
        interviews.get_user_interviews.side_effect = interviews_forever
        aggregator = DashboardAggregator(users, interviews)

        with pytest.raises(ServiceClientError):
            await aggregator.get_user_dashboard("1")

        assert sorted(cancelled) == ["interviews", "stats"]
        leftover = [
            task for task in asyncio.all_tasks() if task is not asyncio.current_task()
        ]
        assert leftover == []
