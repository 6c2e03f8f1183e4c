"""UserServiceProxy: typed calls to user-service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Unpack

from app.models.user import (
    QuotaReservation,
    User,
    UserExists,
    UserList,
    UserProfile,
    UserProfileUpdate,
    UserStats,
)
from app.proxies.base import BaseServiceProxy, RequestOptions, with_idempotency_key
from app.proxies.wire import path_segment

__all__ = ["UserServiceProxy"]


class UserServiceProxy(BaseServiceProxy):
    """Client of user-service: users, profiles, quota and stats."""

    service_name = "user-service"
    cacheable_reads = frozenset({"get_user", "get_user_profile", "get_user_stats"})

    async def get_user(self, user_id: str, **options: Unpack[RequestOptions]) -> User:
        """Fetch one user by id."""
        return await self._read_one("get_user", user_id, "/users/{}", User, options)

    async def get_user_profile(
        self, user_id: str, **options: Unpack[RequestOptions]
    ) -> UserProfile:
        """Fetch the profile of a user."""
        return await self._read_one(
            "get_user_profile", user_id, "/users/{}/profile", UserProfile, options
        )

    async def update_user_profile(
        self,
        user_id: str,
        update: UserProfileUpdate | Mapping[str, Any],
        **options: Unpack[RequestOptions],
    ) -> UserProfile:
        """Change the fields of a profile that ``update`` sets."""
        body = UserProfileUpdate.model_validate(update)
        path = f"/users/{path_segment(user_id)}/profile"
        options = with_idempotency_key(options)
        try:
            return await self._write(
                "update_user_profile", "PATCH", path, body, UserProfile, options
            )
        finally:
            # Also after a failure: a timed-out write may still have applied.
            await self._invalidate(user_id)

    async def reserve_interview_quota(
        self, user_id: str, **options: Unpack[RequestOptions]
    ) -> QuotaReservation:
        """Reserve one interview of the user's quota.

        One ``Idempotency-Key`` is sent on every attempt, so a retried call reserves
        once. A user whose quota is used up gets ServiceClientError with status 409.
        """
        path = f"/users/{path_segment(user_id)}/quota/reservations"
        options = with_idempotency_key(options)
        try:
            return await self._write(
                "reserve_interview_quota",
                "POST",
                path,
                None,
                QuotaReservation,
                options,
            )
        finally:
            await self._invalidate(user_id)

    async def release_quota(
        self, user_id: str, reservation_id: str, **options: Unpack[RequestOptions]
    ) -> None:
        """Release a quota reservation."""
        path = (
            f"/users/{path_segment(user_id)}/quota/reservations/"
            f"{path_segment(reservation_id)}"
        )
        options = with_idempotency_key(options)
        try:
            await self._write("release_quota", "DELETE", path, None, None, options)
        finally:
            await self._invalidate(user_id)

    async def get_user_stats(
        self, user_id: str, **options: Unpack[RequestOptions]
    ) -> UserStats:
        """Fetch activity counters and quota use of a user."""
        return await self._read_one(
            "get_user_stats", user_id, "/users/{}/stats", UserStats, options
        )

    async def check_user_exists(
        self, email: str, **options: Unpack[RequestOptions]
    ) -> bool:
        """Tell whether an account with this e-mail address exists."""
        params = {"email": email}
        result = await self._read(
            "check_user_exists", "/users/exists", UserExists, options, params
        )
        return result.exists

    async def list_users(
        self,
        *,
        page: int = 1,
        limit: int = 20,
        search: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> UserList:
        """List users a page at a time, optionally filtered by a search string."""
        params = {"page": str(page), "limit": str(limit)}
        if search:
            params["search"] = search
        return await self._read("list_users", "/users", UserList, options, params)
