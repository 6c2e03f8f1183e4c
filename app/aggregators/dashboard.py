"""DashboardAggregator: one user's dashboard from parallel upstream calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

from loguru import logger

from app.models.dashboard import Dashboard, PartError
from app.proxies.errors import ServiceProxyError
from app.proxies.interview import InterviewServiceProxy
from app.proxies.staleness import collect_stale_reads
from app.proxies.user import UserServiceProxy
from app.redaction import redact_record
from app.resilience.deadline import deadline_scope

__all__ = ["DASHBOARD_INTERVIEWS_LIMIT", "DashboardAggregator"]

T = TypeVar("T")

DASHBOARD_INTERVIEWS_LIMIT = 10
# Dashboard part that each cached read fills, for marking stale parts.
_PART_OF_OPERATION = {"get_user": "user", "get_user_stats": "stats"}

_log = logger.patch(redact_record)


class DashboardAggregator:
    """Build a dashboard from user-service and interview-service.

    The user is required; interviews and stats are optional. When an optional
    call fails, its part is None and ``errors`` names the service and the kind
    of failure, so that one failing service degrades the dashboard instead of
    failing it. ``optional_deadline`` bounds the optional calls, so that a
    failing optional service costs the page little time.
    """

    def __init__(
        self,
        user_service: UserServiceProxy,
        interview_service: InterviewServiceProxy,
        *,
        optional_deadline: float | None = None,
    ) -> None:
        if optional_deadline is not None and optional_deadline <= 0:
            message = f"optional_deadline must be above 0 s, got {optional_deadline}"
            raise ValueError(message)
        self._users = user_service
        self._interviews = interview_service
        self._optional_deadline = optional_deadline

    async def get_user_dashboard(self, user_id: str) -> Dashboard:
        """Fetch the user, their latest interviews and their stats in parallel.

        Raises:
            ServiceProxyError: the user could not be fetched; the other calls
                are cancelled.
        """
        with collect_stale_reads() as stale_reads:
            user = asyncio.ensure_future(self._users.get_user(user_id))
            # Tasks copy the context when created, so the optional parts get the
            # shorter deadline and the user keeps the request's.
            with self._optional_scope():
                interviews = asyncio.ensure_future(
                    self._interviews.get_user_interviews(
                        user_id, limit=DASHBOARD_INTERVIEWS_LIMIT
                    )
                )
                stats = asyncio.ensure_future(self._users.get_user_stats(user_id))
            try:
                await user
                errors: list[PartError] = []
                interview_list = await _optional("interviews", interviews, errors)
                user_stats = await _optional("stats", stats, errors)
            except BaseException:
                # The user failed, or this call was cancelled. No part may be
                # left running, because its error would then go unread.
                await _cancel_all(user, interviews, stats)
                raise
        stale = sorted(
            {
                _PART_OF_OPERATION[read.operation]
                for read in stale_reads
                if read.operation in _PART_OF_OPERATION
            }
        )
        return Dashboard(
            user=user.result(),
            interviews=None if interview_list is None else interview_list.interviews,
            stats=user_stats,
            errors=errors,
            stale=stale,
        )

    def _optional_scope(self) -> AbstractContextManager[object]:
        if self._optional_deadline is None:
            return nullcontext()
        return deadline_scope(self._optional_deadline)


async def _cancel_all(*tasks: asyncio.Future[Any]) -> None:
    """Cancel the tasks and wait until each has ended, retrieving its error."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _optional(part: str, task: Awaitable[T], errors: list[PartError]) -> T | None:
    """Return an optional part, or None with an entry in ``errors`` on failure."""
    try:
        return await task
    except ServiceProxyError as exc:
        errors.append(
            PartError(
                part=part,
                service=exc.service_name,
                kind=exc.kind.value,
                status=exc.status_code,
            )
        )
        _log.bind(service=exc.service_name).info(
            "dashboard part {part} left out: {kind}", part=part, kind=exc.kind.value
        )
        return None
