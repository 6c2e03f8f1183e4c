"""Tests for the sandbox user-service over real loopback HTTP."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from app.sandbox import create_user_service_app, seeded_user_ids
from app.sandbox.data import USER_COUNT, seed_users
from app.sandbox.records import UserRecord
from tests.sandbox.support import call, serve

SEED_USERS = seed_users(7)
FIRST_USER = SEED_USERS["1"]
EXHAUSTED_IDS = [
    user.id for user in SEED_USERS.values() if user.quota_used == user.quota_limit
]
USER_FIELDS = {"id", "email", "firstName", "lastName", "role", "isActive", "createdAt"}
PROFILE_FIELDS = {
    "userId",
    "bio",
    "company",
    "position",
    "timezone",
    "avatarUrl",
    "updatedAt",
}
STATS_FIELDS = {
    "userId",
    "interviewsCreated",
    "candidatesInvited",
    "quotaLimit",
    "quotaUsed",
    "lastActiveAt",
}
RESERVATION_FIELDS = {"reservationId", "userId", "createdAt", "quotaUsed", "quotaLimit"}
_JSON = {"Content-Type": "application/json"}


def _names(user: UserRecord) -> str:
    return f"{user.email} {user.first_name} {user.last_name}"


def _user_with_spare_quota(spare: int) -> str:
    for user in SEED_USERS.values():
        if user.quota_limit - user.quota_used == spare:
            return user.id
    message = f"no seeded user has exactly {spare} spare quota units"
    raise LookupError(message)


class TestHealth:
    async def test_health_reports_service(self, users: aiohttp.ClientSession) -> None:
        """GET /health returns ok with the service name."""
        status, body = await call(users, "GET", "/health")
        assert status == 200
        assert body == {"status": "ok", "service": "user-service"}


class TestGetUser:
    async def test_get_user_shape(self, users: aiohttp.ClientSession) -> None:
        """GET /users/{id} returns the camelCase User fields."""
        status, body = await call(users, "GET", "/users/1")
        assert status == 200
        assert set(body) == USER_FIELDS
        assert body["id"] == "1"
        assert body["email"] == FIRST_USER.email
        assert body["role"] in {"admin", "recruiter", "interviewer"}
        assert body["createdAt"].endswith("Z")

    async def test_get_user_unknown_gives_404(
        self, users: aiohttp.ClientSession
    ) -> None:
        """An unknown user id gives 404 with a message naming the id."""
        status, body = await call(users, "GET", "/users/999")
        assert status == 404
        assert body == {"message": "User '999' was not found."}


class TestProfile:
    async def test_get_profile_shape(self, users: aiohttp.ClientSession) -> None:
        """GET /users/{id}/profile returns the camelCase UserProfile fields."""
        status, body = await call(users, "GET", "/users/1/profile")
        assert status == 200
        assert set(body) == PROFILE_FIELDS
        assert body["userId"] == "1"
        assert body["company"] == FIRST_USER.profile.company

    async def test_get_profile_unknown_gives_404(
        self, users: aiohttp.ClientSession
    ) -> None:
        """An unknown user id gives 404 on the profile route."""
        status, _ = await call(users, "GET", "/users/999/profile")
        assert status == 404

    async def test_patch_profile_updates_fields(
        self, users: aiohttp.ClientSession
    ) -> None:
        """PATCH changes only the sent fields and a later GET shows them."""
        update = {"bio": "Builds hiring tools.", "avatarUrl": None}
        status, body = await call(users, "PATCH", "/users/1/profile", json=update)
        assert status == 200
        assert body["bio"] == "Builds hiring tools."
        assert body["avatarUrl"] is None
        assert body["company"] == FIRST_USER.profile.company

        _, stored = await call(users, "GET", "/users/1/profile")
        assert stored == body

    async def test_patch_profile_sets_updated_at(
        self, users: aiohttp.ClientSession
    ) -> None:
        """PATCH moves updatedAt past the seeded value."""
        _, before = await call(users, "GET", "/users/1/profile")
        _, after = await call(
            users, "PATCH", "/users/1/profile", json={"timezone": "Asia/Tokyo"}
        )
        assert after["updatedAt"] > before["updatedAt"]

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({"nickname": "x"}, "Unknown field 'nickname' in the request body."),
            ({"avatar_url": "x"}, "Unknown field 'avatar_url' in the request body."),
            ({"bio": 5}, "Invalid field 'bio': Input should be a valid string."),
            ({"bio": None}, "Invalid field 'bio': Input should not be null."),
            ([1, 2], "The request body must be a JSON object, got list."),
            ("text", "The request body must be a JSON object, got str."),
        ],
    )
    async def test_patch_profile_invalid_gives_422(
        self, users: aiohttp.ClientSession, body: Any, message: str
    ) -> None:
        """An invalid PATCH body gives 422 with a message naming the problem."""
        status, response = await call(users, "PATCH", "/users/1/profile", json=body)
        assert status == 422
        assert response == {"message": message}

    async def test_patch_profile_malformed_json_gives_422(
        self, users: aiohttp.ClientSession
    ) -> None:
        """A body that is not JSON gives 422."""
        status, body = await call(
            users, "PATCH", "/users/1/profile", data=b"{bio:", headers=_JSON
        )
        assert status == 422
        assert body == {"message": "The request body is not valid JSON."}

    async def test_patch_profile_empty_body_gives_422(
        self, users: aiohttp.ClientSession
    ) -> None:
        """An empty body gives 422 because a JSON object is required."""
        status, body = await call(users, "PATCH", "/users/1/profile", data=b"")
        assert status == 422
        assert body == {"message": "The request body is empty, expected a JSON object."}

    async def test_patch_profile_rejects_nan(
        self, users: aiohttp.ClientSession
    ) -> None:
        """NaN is not JSON, so a body that contains it gives 422."""
        status, _ = await call(
            users, "PATCH", "/users/1/profile", data=b'{"bio": NaN}', headers=_JSON
        )
        assert status == 422

    async def test_patch_profile_invalid_keeps_state(
        self, users: aiohttp.ClientSession
    ) -> None:
        """A rejected PATCH leaves the profile unchanged."""
        _, before = await call(users, "GET", "/users/1/profile")
        await call(users, "PATCH", "/users/1/profile", json={"bio": "x", "age": 3})
        _, after = await call(users, "GET", "/users/1/profile")
        assert after == before

    async def test_patch_profile_unknown_gives_404(
        self, users: aiohttp.ClientSession
    ) -> None:
        """PATCH on an unknown user gives 404."""
        status, _ = await call(users, "PATCH", "/users/999/profile", json={})
        assert status == 404


class TestQuota:
    async def test_reserve_returns_reservation(
        self, users: aiohttp.ClientSession
    ) -> None:
        """POST reservations returns 201 with the quota count after it."""
        status, body = await call(users, "POST", "/users/1/quota/reservations")
        assert status == 201
        assert set(body) == RESERVATION_FIELDS
        assert body["userId"] == "1"
        assert body["quotaUsed"] == FIRST_USER.quota_used + 1
        assert body["quotaLimit"] == FIRST_USER.quota_limit

    async def test_reserve_quota_exhausted_gives_409(
        self, users: aiohttp.ClientSession
    ) -> None:
        """A user whose quotaUsed equals quotaLimit gets 409."""
        user_id = EXHAUSTED_IDS[0]
        status, body = await call(users, "POST", f"/users/{user_id}/quota/reservations")
        assert status == 409
        assert "used all" in body["message"]

    async def test_reserve_until_exhausted(self, users: aiohttp.ClientSession) -> None:
        """The reservation after the last free unit gets 409."""
        user_id = _user_with_spare_quota(1)
        path = f"/users/{user_id}/quota/reservations"
        first, _ = await call(users, "POST", path)
        second, _ = await call(users, "POST", path)
        assert first == 201
        assert second == 409

    async def test_reserve_unknown_user_gives_404(
        self, users: aiohttp.ClientSession
    ) -> None:
        """A reservation for an unknown user gives 404."""
        status, _ = await call(users, "POST", "/users/999/quota/reservations")
        assert status == 404

    async def test_release_frees_unit(self, users: aiohttp.ClientSession) -> None:
        """DELETE returns 204 without a body and lowers quotaUsed again."""
        _, reservation = await call(users, "POST", "/users/1/quota/reservations")
        path = f"/users/1/quota/reservations/{reservation['reservationId']}"
        async with users.delete(path) as response:
            assert response.status == 204
            assert await response.read() == b""
        _, stats = await call(users, "GET", "/users/1/stats")
        assert stats["quotaUsed"] == FIRST_USER.quota_used

    async def test_release_unknown_reservation_gives_404(
        self, users: aiohttp.ClientSession
    ) -> None:
        """An unknown reservation id gives 404."""
        path = "/users/1/quota/reservations/res-999999"
        status, body = await call(users, "DELETE", path)
        assert status == 404
        assert body == {
            "message": "Reservation 'res-999999' of user '1' was not found."
        }

    async def test_release_twice_gives_404(self, users: aiohttp.ClientSession) -> None:
        """A reservation can be released only once."""
        _, reservation = await call(users, "POST", "/users/1/quota/reservations")
        path = f"/users/1/quota/reservations/{reservation['reservationId']}"
        first, _ = await call(users, "DELETE", path)
        second, _ = await call(users, "DELETE", path)
        assert first == 204
        assert second == 404

    async def test_release_foreign_reservation_gives_404(
        self, users: aiohttp.ClientSession
    ) -> None:
        """A reservation of user 1 is unknown under user 2."""
        _, reservation = await call(users, "POST", "/users/1/quota/reservations")
        path = f"/users/2/quota/reservations/{reservation['reservationId']}"
        status, _ = await call(users, "DELETE", path)
        assert status == 404

    async def test_release_unknown_user_gives_404(
        self, users: aiohttp.ClientSession
    ) -> None:
        """A release for an unknown user gives 404."""
        path = "/users/999/quota/reservations/res-000001"
        status, _ = await call(users, "DELETE", path)
        assert status == 404


class TestStats:
    async def test_stats_shape(self, users: aiohttp.ClientSession) -> None:
        """GET /users/{id}/stats returns the camelCase UserStats fields."""
        status, body = await call(users, "GET", "/users/1/stats")
        assert status == 200
        assert set(body) == STATS_FIELDS
        assert body["quotaLimit"] == FIRST_USER.quota_limit
        assert body["interviewsCreated"] == FIRST_USER.interviews_created

    async def test_stats_unknown_gives_404(self, users: aiohttp.ClientSession) -> None:
        """An unknown user id gives 404 on the stats route."""
        status, _ = await call(users, "GET", "/users/999/stats")
        assert status == 404

    async def test_stats_follow_reservation(self, users: aiohttp.ClientSession) -> None:
        """A reservation raises quotaUsed in the stats."""
        await call(users, "POST", "/users/1/quota/reservations")
        _, body = await call(users, "GET", "/users/1/stats")
        assert body["quotaUsed"] == FIRST_USER.quota_used + 1


class TestExists:
    async def test_exists_known_email(self, users: aiohttp.ClientSession) -> None:
        """A seeded e-mail exists, which also shows /users/exists is matched."""
        params = {"email": FIRST_USER.email}
        status, body = await call(users, "GET", "/users/exists", params=params)
        assert status == 200
        assert body == {"exists": True}

    async def test_exists_ignores_case(self, users: aiohttp.ClientSession) -> None:
        """The e-mail comparison ignores case."""
        params = {"email": FIRST_USER.email.upper()}
        _, body = await call(users, "GET", "/users/exists", params=params)
        assert body == {"exists": True}

    async def test_exists_unknown_email(self, users: aiohttp.ClientSession) -> None:
        """An unknown e-mail gives exists false."""
        params = {"email": "nobody@example.com"}
        _, body = await call(users, "GET", "/users/exists", params=params)
        assert body == {"exists": False}

    @pytest.mark.parametrize("query", ["", "?email="])
    async def test_exists_missing_email_gives_422(
        self, users: aiohttp.ClientSession, query: str
    ) -> None:
        """A missing or empty email parameter gives 422."""
        status, body = await call(users, "GET", f"/users/exists{query}")
        assert status == 422
        assert body == {"message": "Query parameter 'email' is required."}


class TestListUsers:
    async def test_list_defaults(self, users: aiohttp.ClientSession) -> None:
        """Without parameters the list is page 1 of 20 with the full total."""
        status, body = await call(users, "GET", "/users")
        assert status == 200
        assert set(body) == {"users", "total", "page", "limit"}
        assert body["total"] == USER_COUNT
        assert body["page"] == 1
        assert body["limit"] == 20
        assert len(body["users"]) == 20
        assert set(body["users"][0]) == USER_FIELDS

    async def test_list_last_page_is_partial(
        self, users: aiohttp.ClientSession
    ) -> None:
        """Page 3 of 25 contains the last 10 users."""
        params = {"page": "3", "limit": "25"}
        _, body = await call(users, "GET", "/users", params=params)
        assert len(body["users"]) == 10
        assert body["users"][0]["id"] == "51"

    async def test_list_pages_cover_all_users(
        self, users: aiohttp.ClientSession
    ) -> None:
        """Walking the pages yields every user once."""
        seen: list[str] = []
        for page in range(1, 5):
            params = {"page": str(page), "limit": "17"}
            _, body = await call(users, "GET", "/users", params=params)
            seen += [user["id"] for user in body["users"]]
        assert seen == seeded_user_ids()

    async def test_list_page_past_end_is_empty(
        self, users: aiohttp.ClientSession
    ) -> None:
        """A page past the end has no users but keeps the total."""
        params = {"page": "50"}
        _, body = await call(users, "GET", "/users", params=params)
        assert body["users"] == []
        assert body["total"] == USER_COUNT

    async def test_search_matches_last_name(self, users: aiohttp.ClientSession) -> None:
        """A search for a last name, in any case, finds every user with it."""
        last_name = FIRST_USER.last_name
        expected = [u.id for u in SEED_USERS.values() if last_name in _names(u)]
        params = {"search": last_name.upper(), "limit": "100"}
        _, body = await call(users, "GET", "/users", params=params)
        assert [user["id"] for user in body["users"]] == expected
        assert body["total"] == len(expected)

    async def test_search_matches_email(self, users: aiohttp.ClientSession) -> None:
        """A search for an e-mail domain finds users by e-mail."""
        domain = FIRST_USER.email.split("@")[1]
        expected = sum(1 for u in SEED_USERS.values() if u.email.endswith(domain))
        _, body = await call(users, "GET", "/users", params={"search": domain})
        assert body["total"] == expected

    async def test_search_total_counts_beyond_page(
        self, users: aiohttp.ClientSession
    ) -> None:
        """The total counts every match, not only those on the page."""
        params = {"search": "example", "limit": "5"}
        _, body = await call(users, "GET", "/users", params=params)
        assert len(body["users"]) == 5
        assert body["total"] == USER_COUNT

    async def test_search_without_match(self, users: aiohttp.ClientSession) -> None:
        """A search that matches nothing gives an empty page and total 0."""
        params = {"search": "zzzz-nobody"}
        _, body = await call(users, "GET", "/users", params=params)
        assert body["users"] == []
        assert body["total"] == 0

    @pytest.mark.parametrize(
        "params",
        [
            {"limit": "0"},
            {"limit": "101"},
            {"limit": "ten"},
            {"limit": "2.5"},
            {"page": "0"},
            {"page": "-1"},
            {"page": "x"},
            {"page": "9" * 40},
        ],
    )
    async def test_list_invalid_query_gives_422(
        self, users: aiohttp.ClientSession, params: dict[str, str]
    ) -> None:
        """A limit outside 1..100 or a page below 1 gives 422."""
        status, body = await call(users, "GET", "/users", params=params)
        assert status == 422
        assert "Query parameter" in body["message"]


class TestIdempotency:
    async def test_repeated_key_replays_response(
        self, users: aiohttp.ClientSession
    ) -> None:
        """A repeated key returns the first body with the replay header."""
        headers = {"Idempotency-Key": "reserve-1"}
        path = "/users/1/quota/reservations"
        async with users.post(path, headers=headers) as first:
            first_body = await first.json()
            assert "Idempotent-Replayed" not in first.headers
        async with users.post(path, headers=headers) as second:
            assert second.status == 201
            assert second.headers["Idempotent-Replayed"] == "true"
            assert await second.json() == first_body

    async def test_repeated_key_mutates_once(
        self, users: aiohttp.ClientSession
    ) -> None:
        """Two requests with one key reserve a single unit."""
        headers = {"Idempotency-Key": "reserve-2"}
        for _ in range(2):
            await call(users, "POST", "/users/1/quota/reservations", headers=headers)
        _, stats = await call(users, "GET", "/users/1/stats")
        assert stats["quotaUsed"] == FIRST_USER.quota_used + 1

    async def test_concurrent_key_mutates_once(
        self, users: aiohttp.ClientSession
    ) -> None:
        """Concurrent requests with one key reserve a single unit."""
        headers = {"Idempotency-Key": "reserve-3"}
        path = "/users/1/quota/reservations"
        results = await asyncio.gather(
            *(call(users, "POST", path, headers=headers) for _ in range(5))
        )
        ids = {body["reservationId"] for _, body in results}
        assert len(ids) == 1
        _, stats = await call(users, "GET", "/users/1/stats")
        assert stats["quotaUsed"] == FIRST_USER.quota_used + 1

    async def test_different_keys_mutate_twice(
        self, users: aiohttp.ClientSession
    ) -> None:
        """Different keys are separate requests."""
        path = "/users/1/quota/reservations"
        await call(users, "POST", path, headers={"Idempotency-Key": "a"})
        await call(users, "POST", path, headers={"Idempotency-Key": "b"})
        _, stats = await call(users, "GET", "/users/1/stats")
        assert stats["quotaUsed"] == FIRST_USER.quota_used + 2

    async def test_key_is_scoped_to_path(self, users: aiohttp.ClientSession) -> None:
        """One key on two paths runs both requests."""
        headers = {"Idempotency-Key": "shared"}
        _, first = await call(
            users, "POST", "/users/1/quota/reservations", headers=headers
        )
        _, second = await call(
            users, "POST", "/users/2/quota/reservations", headers=headers
        )
        assert second["userId"] == "2"
        assert second["reservationId"] != first["reservationId"]

    async def test_without_key_not_deduplicated(
        self, users: aiohttp.ClientSession
    ) -> None:
        """Requests without a key each reserve a unit."""
        for _ in range(2):
            await call(users, "POST", "/users/1/quota/reservations")
        _, stats = await call(users, "GET", "/users/1/stats")
        assert stats["quotaUsed"] == FIRST_USER.quota_used + 2

    async def test_patch_replay_ignores_new_body(
        self, users: aiohttp.ClientSession
    ) -> None:
        """A replayed PATCH returns the first result and applies nothing new."""
        headers = {"Idempotency-Key": "profile-1"}
        path = "/users/1/profile"
        await call(users, "PATCH", path, json={"bio": "first"}, headers=headers)
        status, body = await call(
            users, "PATCH", path, json={"bio": "second"}, headers=headers
        )
        assert status == 200
        assert body["bio"] == "first"
        _, stored = await call(users, "GET", path)
        assert stored["bio"] == "first"

    async def test_error_response_is_replayed(
        self, users: aiohttp.ClientSession
    ) -> None:
        """A first 409 is replayed with the same status and body."""
        headers = {"Idempotency-Key": "exhausted"}
        path = f"/users/{EXHAUSTED_IDS[0]}/quota/reservations"
        first = await call(users, "POST", path, headers=headers)
        async with users.post(path, headers=headers) as second:
            assert second.status == first[0]
            assert await second.json() == first[1]
            assert second.headers["Idempotent-Replayed"] == "true"


class TestMiddleware:
    async def test_unknown_route_gives_json_404(
        self, users: aiohttp.ClientSession
    ) -> None:
        """An unknown route gives a JSON 404 message."""
        status, body = await call(users, "GET", "/no/such/route")
        assert status == 404
        assert body == {"message": "No route matches GET /no/such/route."}

    async def test_wrong_method_gives_json_405(
        self, users: aiohttp.ClientSession
    ) -> None:
        """A known path with an unsupported method gives a JSON 405."""
        status, body = await call(users, "DELETE", "/users/1")
        assert status == 405
        message = "Method DELETE is not allowed on /users/1, expected one of GET, HEAD."
        assert body == {"message": message}

    async def test_unexpected_error_gives_json_500(self) -> None:
        """An exception in a handler gives a JSON 500 without a traceback."""

        async def fail(request: web.Request) -> web.Response:
            raise RuntimeError("secret detail")

        app = create_user_service_app()
        app.router.add_get("/fail", fail)
        async with serve(app) as session:
            status, body = await call(session, "GET", "/fail")
        assert status == 500
        assert body == {
            "message": "The sandbox failed to handle the request, see its log."
        }

    async def test_latency_delays_response(self) -> None:
        """With latency_ms set, even /health takes at least that long."""
        async with serve(create_user_service_app(latency_ms=150)) as session:
            started = time.monotonic()
            status, _ = await call(session, "GET", "/health")
            elapsed_ms = (time.monotonic() - started) * 1000
        assert status == 200
        assert elapsed_ms >= 150

    def test_negative_latency_raises(self) -> None:
        """A negative latency is a programming error."""
        with pytest.raises(ValueError, match="latency_ms"):
            create_user_service_app(latency_ms=-1)

    async def test_apps_do_not_share_state(self) -> None:
        """A change on one app instance is invisible to another."""
        async with (
            serve(create_user_service_app()) as first,
            serve(create_user_service_app()) as second,
        ):
            await call(first, "PATCH", "/users/1/profile", json={"bio": "changed"})
            _, body = await call(second, "GET", "/users/1/profile")
        assert body["bio"] == FIRST_USER.profile.bio


class TestSeed:
    def test_seed_has_enough_users(self) -> None:
        """The seed contains at least 50 users."""
        assert len(SEED_USERS) >= 50

    def test_seed_ids_are_sequential(self) -> None:
        """User ids run from "1" to the user count as strings."""
        expected = [str(number) for number in range(1, USER_COUNT + 1)]
        assert seeded_user_ids() == expected

    def test_seed_is_deterministic(self) -> None:
        """The same seed builds the same users."""
        assert seed_users(7) == SEED_USERS

    def test_other_seed_differs(self) -> None:
        """A different seed builds different users."""
        assert seed_users(8) != SEED_USERS

    def test_quota_limits_in_range(self) -> None:
        """Every quota limit lies between 5 and 50."""
        limits = [user.quota_limit for user in SEED_USERS.values()]
        assert min(limits) >= 5
        assert max(limits) <= 50

    def test_quota_used_within_limit(self) -> None:
        """No user starts above the quota limit."""
        assert all(u.quota_used <= u.quota_limit for u in SEED_USERS.values())

    def test_some_users_have_exhausted_quota(self) -> None:
        """Several users start with their quota fully used."""
        assert len(EXHAUSTED_IDS) >= 3

    def test_emails_are_unique(self) -> None:
        """No two users share an e-mail."""
        emails = [user.email for user in SEED_USERS.values()]
        assert len(set(emails)) == len(emails)

    def test_every_role_present(self) -> None:
        """Admins, recruiters and interviewers all occur."""
        roles = {user.role for user in SEED_USERS.values()}
        assert roles == {"admin", "recruiter", "interviewer"}

    def test_stats_count_seeded_interviews(self) -> None:
        """Every user created between 3 and 12 interviews."""
        counts = [user.interviews_created for user in SEED_USERS.values()]
        assert min(counts) >= 3
        assert max(counts) <= 12
