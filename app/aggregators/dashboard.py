"""DashboardAggregator: one user's dashboard from parallel upstream calls."""

from __future__ import annotations

import asyncio
from typing import Any

from app.models.dashboard import Dashboard
from app.proxies.interview import InterviewServiceProxy
from app.proxies.user import UserServiceProxy

__all__ = ["DASHBOARD_INTERVIEWS_LIMIT", "DashboardAggregator", "gather_or_cancel"]

DASHBOARD_INTERVIEWS_LIMIT = 10


class DashboardAggregator:
    """Build a dashboard from user-service and interview-service."""

    def __init__(
        self,
        user_service: UserServiceProxy,
        interview_service: InterviewServiceProxy,
    ) -> None:
        self._users = user_service
        self._interviews = interview_service

    async def get_user_dashboard(self, user_id: str) -> Dashboard:
        """Fetch the user, their latest interviews and their stats in parallel.

        Raises:
            ServiceProxyError: the first call that failed; the others are cancelled.
        """
        user = asyncio.ensure_future(self._users.get_user(user_id))
        interviews = asyncio.ensure_future(
            self._interviews.get_user_interviews(
                user_id, limit=DASHBOARD_INTERVIEWS_LIMIT
            )
        )
        stats = asyncio.ensure_future(self._users.get_user_stats(user_id))
        await gather_or_cancel(user, interviews, stats)
        return Dashboard(
            user=user.result(),
            interviews=interviews.result().interviews,
            stats=stats.result(),
        )


async def gather_or_cancel(*tasks: asyncio.Future[Any]) -> None:
    """Wait for tasks with asyncio.gather; when one fails, cancel and await the rest.

    Plain ``gather`` leaves the other tasks running after the first error, and
    they would go on holding connections and retrying for a result nobody reads.
    """
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
