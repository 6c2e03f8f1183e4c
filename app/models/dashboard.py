"""The dashboard that the gateway serves."""

from __future__ import annotations

from app.models.base import ApiModel
from app.models.interview import Interview
from app.models.user import User, UserStats

__all__ = ["Dashboard"]


class Dashboard(ApiModel):
    """A user, their latest interviews and their stats."""

    user: User
    interviews: list[Interview]
    stats: UserStats
