"""Sandbox user-service: users, profiles, quota reservations and activity stats."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from aiohttp import web

from app.sandbox.common import ApiError, health_response, parse_body, query_int
from app.sandbox.data import seed_users
from app.sandbox.faults import SandboxFaults
from app.sandbox.middlewares import build_middlewares
from app.sandbox.records import (
    ReservationRecord,
    UserRecord,
    profile_to_json,
    reservation_to_json,
    user_stats_to_json,
    user_to_json,
    utc_now,
)
from app.sandbox.schemas import ProfileUpdateBody

SERVICE_NAME = "user-service"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


@dataclass
class UserState:
    """Mutable users and quota reservations of one user-service app."""

    users: dict[str, UserRecord]
    reservations: dict[str, ReservationRecord] = field(default_factory=dict)
    reservation_numbers: itertools.count[int] = field(
        default_factory=lambda: itertools.count(1)
    )

    def find_user(self, user_id: str) -> UserRecord:
        """Return the user with ``user_id``, or raise a 404 `ApiError`."""
        user = self.users.get(user_id)
        if user is None:
            raise ApiError(404, f"User '{user_id}' was not found.")
        return user


USER_STATE = web.AppKey("user_state", UserState)


def create_user_service_app(
    *, latency_ms: float = 0, seed: int = 7, faults: SandboxFaults | None = None
) -> web.Application:
    """Create the user-service app with its own copy of the seeded users.

    ``faults`` lets a test inject failures into named routes, see `SandboxFaults`.
    """
    middlewares = build_middlewares(SERVICE_NAME, latency_ms=latency_ms, faults=faults)
    app = web.Application(middlewares=middlewares)
    app[USER_STATE] = UserState(users=seed_users(seed))
    _add_routes(app.router)
    return app


def _add_routes(router: web.UrlDispatcher) -> None:
    # Route names are listed in the SandboxFaults docstring, which selects routes
    # by them.
    router.add_get("/health", get_health, name="user_service_health")
    # /users/exists goes before /users/{id}, which would otherwise match it.
    router.add_get("/users/exists", get_user_exists, name="get_user_exists")
    router.add_get("/users", list_users, name="list_users")
    router.add_get("/users/{id}", get_user, name="get_user")
    router.add_get("/users/{id}/profile", get_profile, name="get_profile")
    router.add_patch("/users/{id}/profile", patch_profile, name="patch_profile")
    router.add_post(
        "/users/{id}/quota/reservations", reserve_quota, name="reserve_quota"
    )
    router.add_delete(
        "/users/{id}/quota/reservations/{reservationId}",
        release_quota,
        name="release_quota",
    )
    router.add_get("/users/{id}/stats", get_stats, name="get_user_stats")


def _state(request: web.Request) -> UserState:
    return request.app[USER_STATE]


async def get_health(request: web.Request) -> web.Response:
    """Report that user-service is up."""
    return health_response(SERVICE_NAME)


async def get_user(request: web.Request) -> web.Response:
    """Send the ``User`` with the id in the path."""
    user = _state(request).find_user(request.match_info["id"])
    return web.json_response(user_to_json(user))


async def get_profile(request: web.Request) -> web.Response:
    """Send the ``UserProfile`` of the user in the path."""
    user = _state(request).find_user(request.match_info["id"])
    return web.json_response(profile_to_json(user))


async def patch_profile(request: web.Request) -> web.Response:
    """Apply a ``UserProfileUpdate`` and send the updated ``UserProfile``."""
    user = _state(request).find_user(request.match_info["id"])
    update = await parse_body(request, ProfileUpdateBody)

    # Validation passed, so every sent field except avatarUrl is a string.
    profile = user.profile
    for name in update.model_fields_set:
        setattr(profile, name, getattr(update, name))
    now = utc_now()
    profile.updated_at = now
    user.last_active_at = now
    return web.json_response(profile_to_json(user))


async def reserve_quota(request: web.Request) -> web.Response:
    """Reserve one quota unit, or reject with 409 when the quota is used up."""
    state = _state(request)
    user = state.find_user(request.match_info["id"])
    if user.quota_used >= user.quota_limit:
        message = (
            f"User '{user.id}' has used all {user.quota_limit} units of quota, "
            "so release a reservation first."
        )
        raise ApiError(409, message)

    now = utc_now()
    reservation = ReservationRecord(
        reservation_id=f"res-{next(state.reservation_numbers):06d}",
        user_id=user.id,
        created_at=now,
    )
    state.reservations[reservation.reservation_id] = reservation
    user.quota_used += 1
    user.last_active_at = now
    return web.json_response(reservation_to_json(reservation, user), status=201)


async def release_quota(request: web.Request) -> web.Response:
    """Delete a quota reservation and give its unit back to the user."""
    state = _state(request)
    user = state.find_user(request.match_info["id"])
    reservation_id = request.match_info["reservationId"]
    reservation = state.reservations.get(reservation_id)
    if reservation is None or reservation.user_id != user.id:
        message = f"Reservation '{reservation_id}' of user '{user.id}' was not found."
        raise ApiError(404, message)

    del state.reservations[reservation_id]
    user.quota_used -= 1
    return web.Response(status=204)


async def get_stats(request: web.Request) -> web.Response:
    """Send the ``UserStats`` of the user in the path."""
    user = _state(request).find_user(request.match_info["id"])
    return web.json_response(user_stats_to_json(user))


async def get_user_exists(request: web.Request) -> web.Response:
    """Report whether a user has the e-mail in the query, ignoring case."""
    email = request.query.get("email", "")
    if not email:
        raise ApiError(422, "Query parameter 'email' is required.")
    email_key = email.casefold()
    users = _state(request).users.values()
    exists = any(user.email.casefold() == email_key for user in users)
    return web.json_response({"exists": exists})


async def list_users(request: web.Request) -> web.Response:
    """Send one page of users whose e-mail or name contains ``search``."""
    page = query_int(request, "page", default=1, minimum=1)
    limit = query_int(
        request, "limit", default=DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE
    )
    search = request.query.get("search", "").casefold()
    matches = [
        user for user in _state(request).users.values() if _matches(user, search)
    ]

    start = (page - 1) * limit
    users = [user_to_json(user) for user in matches[start : start + limit]]
    body = {"users": users, "total": len(matches), "page": page, "limit": limit}
    return web.json_response(body)


def _matches(user: UserRecord, search: str) -> bool:
    fields = (user.email, user.first_name, user.last_name)
    return any(search in value.casefold() for value in fields)
