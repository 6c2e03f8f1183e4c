"""Payloads of user-service."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from app.models.base import ApiModel, UpdateModel

__all__ = [
    "QuotaReservation",
    "User",
    "UserExists",
    "UserList",
    "UserProfile",
    "UserProfileUpdate",
    "UserRole",
    "UserStats",
]

UserRole = Literal["admin", "recruiter", "interviewer"]


class User(ApiModel):
    """An account of user-service."""

    id: str
    email: str
    first_name: str
    last_name: str
    role: UserRole
    is_active: bool
    created_at: datetime


class UserProfile(ApiModel):
    """The editable public profile of a user."""

    user_id: str
    bio: str
    company: str
    position: str
    timezone: str
    avatar_url: str | None = None
    updated_at: datetime


class UserProfileUpdate(UpdateModel):
    """Fields of a profile to change; fields left unset keep their value."""

    bio: str | None = None
    company: str | None = None
    position: str | None = None
    timezone: str | None = None
    avatar_url: str | None = None


class QuotaReservation(ApiModel):
    """One reserved unit of a user's interview quota."""

    reservation_id: str
    user_id: str
    created_at: datetime
    quota_used: int
    quota_limit: int


class UserStats(ApiModel):
    """Activity counters and quota use of a user."""

    user_id: str
    interviews_created: int
    candidates_invited: int
    quota_limit: int
    quota_used: int
    last_active_at: datetime | None = None


class UserExists(ApiModel):
    """Whether an account with an e-mail address exists."""

    exists: bool


class UserList(ApiModel):
    """One page of users."""

    users: list[User]
    total: int
    page: int
    limit: int
