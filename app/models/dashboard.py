"""The dashboard that the gateway serves."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.models.base import ApiModel
from app.models.interview import Interview
from app.models.user import User, UserStats

__all__ = ["Dashboard", "PartError"]

DashboardPart = Literal["user", "interviews", "stats"]


class PartError(ApiModel):
    """Reason an optional part of a dashboard is missing."""

    part: DashboardPart
    service: str
    kind: str
    """Bounded failure class, such as ``timeout`` or ``circuit_open``."""
    status: int | None = None
    """The upstream's HTTP status, when it responded."""


class Dashboard(ApiModel):
    """A user, their latest interviews and their stats.

    ``interviews`` and ``stats`` are None when their service failed, and
    ``errors`` then gives the reason. ``stale`` names the parts served from an
    expired cache entry because their service failed.
    """

    user: User
    interviews: list[Interview] | None
    stats: UserStats | None
    errors: list[PartError] = Field(default_factory=list)
    stale: list[DashboardPart] = Field(default_factory=list)
