"""Tests for the sandbox interview-service over real loopback HTTP."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest

from app.sandbox import create_interview_service_app
from app.sandbox.data import USER_COUNT, seed_interviews
from app.sandbox.records import CANDIDATE_STATUSES, INTERVIEW_STATUSES
from tests.sandbox.support import call, serve

SEED_INTERVIEWS = seed_interviews(7)
ID_BY_STATUS: dict[str, str] = {
    status: next(i.id for i in SEED_INTERVIEWS.values() if i.status == status)
    for status in INTERVIEW_STATUSES
}
ARCHIVED_ID = ID_BY_STATUS["archived"]
INTERVIEW_FIELDS = {
    "id",
    "userId",
    "title",
    "description",
    "status",
    "settings",
    "candidateCount",
    "createdAt",
    "updatedAt",
    "publishedAt",
}
SETTINGS_FIELDS = {
    "duration",
    "difficulty",
    "recordVideo",
    "recordAudio",
    "allowRetakes",
}
CANDIDATE_FIELDS = {
    "id",
    "interviewId",
    "email",
    "firstName",
    "lastName",
    "status",
    "invitedAt",
    "completedAt",
    "score",
}
STATS_FIELDS = {
    "interviewId",
    "candidatesTotal",
    "candidatesInvited",
    "candidatesInProgress",
    "candidatesCompleted",
    "candidatesRejected",
    "completionRate",
    "averageScore",
}
USER_STATS_FIELDS = {
    "userId",
    "interviewsTotal",
    "interviewsByStatus",
    "candidatesTotal",
    "candidatesCompleted",
    "averageScore",
}
SETTINGS = {
    "duration": 1800,
    "difficulty": "hard",
    "recordVideo": False,
    "recordAudio": True,
    "allowRetakes": True,
}
NEW_CANDIDATE = {
    "email": "new.person@example.com",
    "firstName": "New",
    "lastName": "Person",
}

# (current status, action, expected status or None for 409)
TRANSITION_CASES = [
    ("draft", "publish", "active"),
    ("paused", "publish", "active"),
    ("active", "publish", None),
    ("archived", "publish", None),
    ("active", "pause", "paused"),
    ("draft", "pause", None),
    ("paused", "pause", None),
    ("archived", "pause", None),
    ("draft", "archive", "archived"),
    ("active", "archive", "archived"),
    ("paused", "archive", "archived"),
    ("archived", "archive", None),
]


def _interview_with_candidates(minimum: int) -> str:
    for interview in SEED_INTERVIEWS.values():
        if interview.status == "active" and len(interview.candidates) >= minimum:
            return interview.id
    message = f"no seeded active interview has {minimum} candidates"
    raise LookupError(message)


async def _create(session: aiohttp.ClientSession, **fields: Any) -> dict[str, Any]:
    body = {"userId": "1", "title": "Platform Engineer: pairing session"} | fields
    status, created = await call(session, "POST", "/interviews", json=body)
    assert status == 201
    result: dict[str, Any] = created
    return result


class TestHealth:
    async def test_health_reports_service(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """GET /health returns ok with the service name."""
        status, body = await call(interviews, "GET", "/health")
        assert status == 200
        assert body == {"status": "ok", "service": "interview-service"}


class TestCreateInterview:
    async def test_create_returns_draft(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """POST /interviews returns 201 with a draft using the default settings."""
        body = await _create(interviews)
        assert set(body) == INTERVIEW_FIELDS
        assert body["status"] == "draft"
        assert body["candidateCount"] == 0
        assert body["publishedAt"] is None
        assert body["description"] is None
        assert body["settings"] == {
            "duration": 3600,
            "difficulty": "medium",
            "recordVideo": True,
            "recordAudio": True,
            "allowRetakes": False,
        }

    async def test_create_gets_next_id(self, interviews: aiohttp.ClientSession) -> None:
        """A new interview gets the id after the seeded ones."""
        body = await _create(interviews)
        assert body["id"] == f"iv-{len(SEED_INTERVIEWS) + 1:04d}"

    async def test_create_stores_settings(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """Sent settings and description are stored as given."""
        body = await _create(interviews, settings=SETTINGS, description="Pairing.")
        _, stored = await call(interviews, "GET", f"/interviews/{body['id']}")
        assert stored["settings"] == SETTINGS
        assert stored["description"] == "Pairing."

    async def test_create_accepts_200_char_title(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """A title of exactly 200 characters is valid."""
        body = await _create(interviews, title="t" * 200)
        assert len(body["title"]) == 200

    async def test_created_interview_listed_first(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """The newest interview heads the user's list."""
        created = await _create(interviews)
        _, body = await call(interviews, "GET", "/users/1/interviews")
        assert body["interviews"][0]["id"] == created["id"]

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({"userId": "1"}, "Missing required field 'title'."),
            ({"title": "x"}, "Missing required field 'userId'."),
            (
                {"userId": 1, "title": "x"},
                "Invalid field 'userId': Input should be a valid string.",
            ),
            (
                {"userId": "1", "title": ""},
                "Invalid field 'title': String should have at least 1 character.",
            ),
            (
                {"userId": "1", "title": "t" * 201},
                "Invalid field 'title': String should have at most 200 characters.",
            ),
            (
                {"userId": "1", "title": "x", "status": "active"},
                "Unknown field 'status' in the request body.",
            ),
            (
                {"userId": "1", "title": "x", "settings": None},
                "Invalid field 'settings': Input should not be null.",
            ),
            (
                {"userId": "1", "title": "x", "settings": {"duration": 600}},
                "Missing required field 'settings.difficulty'.",
            ),
            ([{"userId": "1"}], "The request body must be a JSON object, got list."),
        ],
    )
    async def test_create_invalid_gives_422(
        self, interviews: aiohttp.ClientSession, body: Any, message: str
    ) -> None:
        """An invalid InterviewCreate gives 422 with a message naming the field."""
        status, response = await call(interviews, "POST", "/interviews", json=body)
        assert status == 422
        assert response == {"message": message}

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("duration", 59),
            ("duration", 14_401),
            ("duration", 600.0),
            ("duration", "600"),
            ("duration", True),
            ("difficulty", "extreme"),
            ("recordVideo", 1),
            ("allowRetakes", "yes"),
        ],
    )
    async def test_create_invalid_settings_gives_422(
        self, interviews: aiohttp.ClientSession, field: str, value: Any
    ) -> None:
        """A settings value of the wrong type or out of range gives 422."""
        body = {"userId": "1", "title": "x", "settings": SETTINGS | {field: value}}
        status, response = await call(interviews, "POST", "/interviews", json=body)
        assert status == 422
        assert f"'settings.{field}'" in response["message"]

    @pytest.mark.parametrize("duration", [60, 14_400])
    async def test_create_duration_bounds_valid(
        self, interviews: aiohttp.ClientSession, duration: int
    ) -> None:
        """Durations of 60 and 14400 seconds are both valid."""
        body = await _create(interviews, settings=SETTINGS | {"duration": duration})
        assert body["settings"]["duration"] == duration


class TestGetInterview:
    async def test_get_interview_shape(self, interviews: aiohttp.ClientSession) -> None:
        """GET /interviews/{id} returns the camelCase Interview fields."""
        status, body = await call(interviews, "GET", "/interviews/iv-0001")
        assert status == 200
        assert set(body) == INTERVIEW_FIELDS
        assert set(body["settings"]) == SETTINGS_FIELDS
        assert body["id"] == "iv-0001"
        assert body["userId"] == "1"
        assert body["createdAt"].endswith("Z")

    async def test_get_interview_unknown_gives_404(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """An unknown interview id gives 404 naming the id."""
        status, body = await call(interviews, "GET", "/interviews/iv-9999")
        assert status == 404
        assert body == {"message": "Interview 'iv-9999' was not found."}


class TestPatchInterview:
    async def test_patch_updates_title(self, interviews: aiohttp.ClientSession) -> None:
        """PATCH changes the title and keeps the other fields."""
        _, before = await call(interviews, "GET", "/interviews/iv-0001")
        update = {"title": "Renamed"}
        status, body = await call(
            interviews, "PATCH", "/interviews/iv-0001", json=update
        )
        assert status == 200
        assert body["title"] == "Renamed"
        assert body["settings"] == before["settings"]
        assert body["updatedAt"] > before["updatedAt"]

    async def test_patch_clears_description(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """A null description clears it."""
        update = {"description": None}
        _, body = await call(interviews, "PATCH", "/interviews/iv-0002", json=update)
        assert body["description"] is None

    async def test_patch_replaces_settings(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """Sent settings replace the whole settings object."""
        update = {"settings": SETTINGS}
        _, body = await call(interviews, "PATCH", "/interviews/iv-0001", json=update)
        assert body["settings"] == SETTINGS

    async def test_patch_archived_gives_409(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """An archived interview rejects PATCH with 409."""
        path = f"/interviews/{ARCHIVED_ID}"
        status, body = await call(interviews, "PATCH", path, json={"title": "x"})
        assert status == 409
        assert body == {
            "message": f"Interview '{ARCHIVED_ID}' is archived and cannot be updated."
        }

    async def test_patch_unknown_gives_404(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """PATCH on an unknown interview gives 404."""
        path = "/interviews/iv-9999"
        status, _ = await call(interviews, "PATCH", path, json={"title": "x"})
        assert status == 404

    @pytest.mark.parametrize(
        "update",
        [
            {"title": None},
            {"title": ""},
            {"title": 7},
            {"settings": {"duration": 600}},
            {"status": "active"},
            {"userId": "2"},
        ],
    )
    async def test_patch_invalid_gives_422(
        self, interviews: aiohttp.ClientSession, update: dict[str, Any]
    ) -> None:
        """An invalid InterviewUpdate gives 422."""
        path = "/interviews/iv-0001"
        status, _ = await call(interviews, "PATCH", path, json=update)
        assert status == 422


class TestDeleteInterview:
    async def test_delete_removes_interview(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """DELETE returns 204 without a body and a later GET gives 404."""
        async with interviews.delete("/interviews/iv-0001") as response:
            assert response.status == 204
            assert await response.read() == b""
        status, _ = await call(interviews, "GET", "/interviews/iv-0001")
        assert status == 404

    async def test_delete_unknown_gives_404(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """DELETE on an unknown interview gives 404."""
        status, _ = await call(interviews, "DELETE", "/interviews/iv-9999")
        assert status == 404

    async def test_delete_lowers_user_total(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """A deleted interview drops out of the user's total."""
        _, before = await call(interviews, "GET", "/users/1/interviews")
        await call(interviews, "DELETE", "/interviews/iv-0001")
        _, after = await call(interviews, "GET", "/users/1/interviews")
        assert after["total"] == before["total"] - 1


class TestCandidates:
    async def test_list_candidates_shape(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """The list has camelCase Candidates and its total equals candidateCount."""
        interview_id = _interview_with_candidates(2)
        path = f"/interviews/{interview_id}/candidates"
        status, body = await call(interviews, "GET", path)
        _, interview = await call(interviews, "GET", f"/interviews/{interview_id}")
        assert status == 200
        assert set(body) == {"candidates", "total"}
        assert set(body["candidates"][0]) == CANDIDATE_FIELDS
        assert body["total"] == len(body["candidates"])
        assert body["total"] == interview["candidateCount"]

    async def test_list_candidates_unknown_gives_404(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """Listing candidates of an unknown interview gives 404."""
        status, _ = await call(interviews, "GET", "/interviews/iv-9999/candidates")
        assert status == 404

    async def test_add_candidate_returns_invited(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """POST candidates returns 201 with an invited candidate."""
        path = "/interviews/iv-0001/candidates"
        status, body = await call(interviews, "POST", path, json=NEW_CANDIDATE)
        assert status == 201
        assert set(body) == CANDIDATE_FIELDS
        assert body["interviewId"] == "iv-0001"
        assert body["status"] == "invited"
        assert body["score"] is None
        assert body["completedAt"] is None

    async def test_add_candidate_raises_count(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """A new candidate raises candidateCount by one."""
        _, before = await call(interviews, "GET", "/interviews/iv-0001")
        path = "/interviews/iv-0001/candidates"
        await call(interviews, "POST", path, json=NEW_CANDIDATE)
        _, after = await call(interviews, "GET", "/interviews/iv-0001")
        assert after["candidateCount"] == before["candidateCount"] + 1

    async def test_add_duplicate_email_gives_409(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """An e-mail already in the interview, in any case, gives 409."""
        path = "/interviews/iv-0001/candidates"
        await call(interviews, "POST", path, json=NEW_CANDIDATE)
        duplicate = NEW_CANDIDATE | {"email": NEW_CANDIDATE["email"].upper()}
        status, body = await call(interviews, "POST", path, json=duplicate)
        assert status == 409
        assert "already added" in body["message"]

    async def test_same_email_other_interview_allowed(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """The same e-mail may join a different interview."""
        await call(
            interviews, "POST", "/interviews/iv-0001/candidates", json=NEW_CANDIDATE
        )
        status, _ = await call(
            interviews, "POST", "/interviews/iv-0003/candidates", json=NEW_CANDIDATE
        )
        assert status == 201

    async def test_add_to_archived_gives_409(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """An archived interview rejects new candidates with 409."""
        path = f"/interviews/{ARCHIVED_ID}/candidates"
        status, body = await call(interviews, "POST", path, json=NEW_CANDIDATE)
        assert status == 409
        assert "archived" in body["message"]

    async def test_add_to_unknown_gives_404(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """Adding a candidate to an unknown interview gives 404."""
        path = "/interviews/iv-9999/candidates"
        status, _ = await call(interviews, "POST", path, json=NEW_CANDIDATE)
        assert status == 404

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (
                NEW_CANDIDATE | {"email": "no-at-sign"},
                "Invalid field 'email': Input should contain '@'.",
            ),
            (
                {"email": "a@example.com", "firstName": "A"},
                "Missing required field 'lastName'.",
            ),
            (
                NEW_CANDIDATE | {"first_name": "A"},
                "Unknown field 'first_name' in the request body.",
            ),
            (
                NEW_CANDIDATE | {"firstName": 3},
                "Invalid field 'firstName': Input should be a valid string.",
            ),
        ],
    )
    async def test_add_invalid_gives_422(
        self, interviews: aiohttp.ClientSession, body: Any, message: str
    ) -> None:
        """An invalid CandidateCreate gives 422 naming the field."""
        path = "/interviews/iv-0001/candidates"
        status, response = await call(interviews, "POST", path, json=body)
        assert status == 422
        assert response == {"message": message}


class TestInterviewStats:
    async def test_stats_match_candidates(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """The stats agree with the candidate list of the interview."""
        interview_id = _interview_with_candidates(4)
        _, listed = await call(
            interviews, "GET", f"/interviews/{interview_id}/candidates"
        )
        status, stats = await call(
            interviews, "GET", f"/interviews/{interview_id}/stats"
        )
        statuses = Counter(item["status"] for item in listed["candidates"])
        scores = [item["score"] for item in listed["candidates"] if item["score"]]
        assert status == 200
        assert set(stats) == STATS_FIELDS
        assert stats["candidatesTotal"] == listed["total"]
        assert stats["candidatesInvited"] == statuses["invited"]
        assert stats["candidatesInProgress"] == statuses["in_progress"]
        assert stats["candidatesCompleted"] == statuses["completed"]
        assert stats["candidatesRejected"] == statuses["rejected"]
        assert stats["completionRate"] == statuses["completed"] / listed["total"]
        assert stats["averageScore"] == pytest.approx(sum(scores) / len(scores))

    async def test_stats_without_candidates(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """An interview without candidates has rate 0.0 and no average score."""
        created = await _create(interviews)
        _, stats = await call(interviews, "GET", f"/interviews/{created['id']}/stats")
        assert stats["candidatesTotal"] == 0
        assert stats["completionRate"] == 0.0
        assert stats["averageScore"] is None

    async def test_stats_unknown_gives_404(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """Stats of an unknown interview give 404."""
        status, _ = await call(interviews, "GET", "/interviews/iv-9999/stats")
        assert status == 404


class TestStatusTransitions:
    @pytest.mark.parametrize(("current", "action", "expected"), TRANSITION_CASES)
    async def test_transition_table(
        self,
        interviews: aiohttp.ClientSession,
        current: str,
        action: str,
        expected: str | None,
    ) -> None:
        """Each action succeeds only from the statuses the contract allows."""
        path = f"/interviews/{ID_BY_STATUS[current]}/{action}"
        status, body = await call(interviews, "POST", path)
        if expected is None:
            assert status == 409
            assert f"status is {current}" in body["message"]
        else:
            assert status == 200
            assert body["status"] == expected

    async def test_first_publish_sets_published_at(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """Publishing a new draft sets publishedAt."""
        created = await _create(interviews)
        path = f"/interviews/{created['id']}/publish"
        _, body = await call(interviews, "POST", path)
        assert body["publishedAt"] is not None

    async def test_republish_keeps_published_at(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """Publishing again after a pause keeps the first publishedAt."""
        interview_id = ID_BY_STATUS["active"]
        _, before = await call(interviews, "GET", f"/interviews/{interview_id}")
        await call(interviews, "POST", f"/interviews/{interview_id}/pause")
        _, body = await call(interviews, "POST", f"/interviews/{interview_id}/publish")
        assert body["status"] == "active"
        assert body["publishedAt"] == before["publishedAt"]

    async def test_transition_unknown_gives_404(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """A status change of an unknown interview gives 404."""
        status, _ = await call(interviews, "POST", "/interviews/iv-9999/publish")
        assert status == 404


class TestUserInterviews:
    async def test_list_newest_first(self, interviews: aiohttp.ClientSession) -> None:
        """The list is sorted by createdAt, newest first."""
        status, body = await call(interviews, "GET", "/users/1/interviews")
        created = [item["createdAt"] for item in body["interviews"]]
        assert status == 200
        assert set(body) == {"interviews", "total"}
        assert created == sorted(created, reverse=True)

    async def test_list_total_counts_all(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """The total counts every interview of the user before the limit."""
        expected = sum(1 for i in SEED_INTERVIEWS.values() if i.user_id == "1")
        params = {"limit": "1"}
        _, body = await call(interviews, "GET", "/users/1/interviews", params=params)
        assert len(body["interviews"]) == 1
        assert body["total"] == expected

    @pytest.mark.parametrize("status", INTERVIEW_STATUSES)
    async def test_list_filters_by_status(
        self, interviews: aiohttp.ClientSession, status: str
    ) -> None:
        """The status filter keeps only interviews with that status."""
        user_id = SEED_INTERVIEWS[ID_BY_STATUS[status]].user_id
        expected = sum(
            1
            for item in SEED_INTERVIEWS.values()
            if item.user_id == user_id and item.status == status
        )
        path = f"/users/{user_id}/interviews"
        _, body = await call(interviews, "GET", path, params={"status": status})
        assert {item["status"] for item in body["interviews"]} == {status}
        assert body["total"] == expected

    async def test_list_unknown_user_is_empty(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """A user without interviews gets an empty list, not 404."""
        status, body = await call(interviews, "GET", "/users/nobody/interviews")
        assert status == 200
        assert body == {"interviews": [], "total": 0}

    @pytest.mark.parametrize(
        "params",
        [
            {"limit": "0"},
            {"limit": "101"},
            {"limit": "many"},
            {"status": "deleted"},
            {"status": ""},
            {"status": "ACTIVE"},
        ],
    )
    async def test_list_invalid_query_gives_422(
        self, interviews: aiohttp.ClientSession, params: dict[str, str]
    ) -> None:
        """An invalid limit or status filter gives 422."""
        path = "/users/1/interviews"
        status, body = await call(interviews, "GET", path, params=params)
        assert status == 422
        assert "Query parameter" in body["message"]


class TestUserInterviewStats:
    async def test_user_stats_shape(self, interviews: aiohttp.ClientSession) -> None:
        """The stats use camelCase, and the status counts sum to the total."""
        status, body = await call(interviews, "GET", "/users/1/interview-stats")
        by_status = body["interviewsByStatus"]
        assert status == 200
        assert set(body) == USER_STATS_FIELDS
        assert set(by_status) == set(INTERVIEW_STATUSES)
        assert sum(by_status.values()) == body["interviewsTotal"]

    async def test_user_stats_count_candidates(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """The candidate counts agree with the seeded interviews of the user."""
        own = [i for i in SEED_INTERVIEWS.values() if i.user_id == "1"]
        candidates = [c for i in own for c in i.candidates]
        completed = [c for c in candidates if c.status == "completed"]
        _, body = await call(interviews, "GET", "/users/1/interview-stats")
        assert body["candidatesTotal"] == len(candidates)
        assert body["candidatesCompleted"] == len(completed)

    async def test_user_stats_unknown_user_zero(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """A user without interviews gets zero counts and no average score."""
        status, body = await call(interviews, "GET", "/users/nobody/interview-stats")
        assert status == 200
        assert body == {
            "userId": "nobody",
            "interviewsTotal": 0,
            "interviewsByStatus": {"draft": 0, "active": 0, "paused": 0, "archived": 0},
            "candidatesTotal": 0,
            "candidatesCompleted": 0,
            "averageScore": None,
        }


class TestIdempotency:
    async def test_create_replay_creates_once(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """A repeated key on POST /interviews creates one interview."""
        headers = {"Idempotency-Key": "create-1"}
        body = {"userId": "nobody", "title": "Replayed"}
        _, first = await call(
            interviews, "POST", "/interviews", json=body, headers=headers
        )
        async with interviews.post("/interviews", json=body, headers=headers) as second:
            assert second.status == 201
            assert second.headers["Idempotent-Replayed"] == "true"
            assert await second.json() == first
        _, listed = await call(interviews, "GET", "/users/nobody/interviews")
        assert listed["total"] == 1

    async def test_publish_replay_returns_first(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """A replayed publish returns the first 200 instead of a 409."""
        headers = {"Idempotency-Key": "publish-1"}
        path = f"/interviews/{ID_BY_STATUS['draft']}/publish"
        first, _ = await call(interviews, "POST", path, headers=headers)
        second, body = await call(interviews, "POST", path, headers=headers)
        assert first == 200
        assert second == 200
        assert body["status"] == "active"

    async def test_concurrent_candidates_added_once(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """Concurrent requests with one key add a single candidate."""
        _, before = await call(interviews, "GET", "/interviews/iv-0001")
        headers = {"Idempotency-Key": "candidate-1"}
        path = "/interviews/iv-0001/candidates"
        results = await asyncio.gather(
            *(
                call(interviews, "POST", path, json=NEW_CANDIDATE, headers=headers)
                for _ in range(5)
            )
        )
        _, after = await call(interviews, "GET", "/interviews/iv-0001")
        assert {status for status, _ in results} == {201}
        assert after["candidateCount"] == before["candidateCount"] + 1


class TestMiddleware:
    async def test_unknown_route_gives_json_404(
        self, interviews: aiohttp.ClientSession
    ) -> None:
        """An unknown route gives a JSON 404 message."""
        status, body = await call(interviews, "POST", "/interviews/iv-0001/restart")
        assert status == 404
        assert body == {"message": "No route matches POST /interviews/iv-0001/restart."}

    async def test_latency_delays_response(self) -> None:
        """With latency_ms set, a request takes at least that long."""
        app = create_interview_service_app(latency_ms=150)
        async with serve(app) as session:
            started = time.monotonic()
            status, _ = await call(session, "GET", "/interviews/iv-0001")
            elapsed_ms = (time.monotonic() - started) * 1000
        assert status == 200
        assert elapsed_ms >= 150

    async def test_apps_do_not_share_state(self) -> None:
        """A deletion on one app instance is invisible to another."""
        async with (
            serve(create_interview_service_app()) as first,
            serve(create_interview_service_app()) as second,
        ):
            await call(first, "DELETE", "/interviews/iv-0001")
            status, _ = await call(second, "GET", "/interviews/iv-0001")
        assert status == 200


class TestSeed:
    def test_ids_use_iv_prefix(self) -> None:
        """Interview ids run from iv-0001 without gaps."""
        expected = [f"iv-{n:04d}" for n in range(1, len(SEED_INTERVIEWS) + 1)]
        assert list(SEED_INTERVIEWS) == expected

    def test_every_interview_status_present(self) -> None:
        """Each interview status occurs in the seed."""
        statuses = {item.status for item in SEED_INTERVIEWS.values()}
        assert statuses == set(INTERVIEW_STATUSES)

    def test_every_candidate_status_present(self) -> None:
        """Each candidate status occurs in the seed."""
        statuses = {c.status for i in SEED_INTERVIEWS.values() for c in i.candidates}
        assert statuses == set(CANDIDATE_STATUSES)

    def test_interviews_per_user(self) -> None:
        """Every seeded user owns between 3 and 12 interviews."""
        counts = Counter(item.user_id for item in SEED_INTERVIEWS.values())
        assert len(counts) == USER_COUNT
        assert min(counts.values()) >= 3
        assert max(counts.values()) <= 12

    def test_users_have_varied_statuses(self) -> None:
        """Most users own interviews in at least three statuses."""
        statuses: dict[str, set[str]] = {}
        for item in SEED_INTERVIEWS.values():
            statuses.setdefault(item.user_id, set()).add(item.status)
        varied = sum(1 for value in statuses.values() if len(value) >= 3)
        assert varied > USER_COUNT / 2

    def test_candidates_per_interview(self) -> None:
        """Interviews have 0 to 15 candidates and most have at least 2."""
        counts = [len(item.candidates) for item in SEED_INTERVIEWS.values()]
        assert max(counts) <= 15
        assert sum(1 for count in counts if count >= 2) > len(counts) / 2

    def test_scores_only_on_completed(self) -> None:
        """Only completed candidates carry a score and a completion time."""
        for interview in SEED_INTERVIEWS.values():
            for candidate in interview.candidates:
                completed = candidate.status == "completed"
                assert (candidate.score is not None) == completed
                assert (candidate.completed_at is not None) == completed

    def test_scores_in_range(self) -> None:
        """Every score lies between 0 and 100."""
        scores = [
            c.score
            for i in SEED_INTERVIEWS.values()
            for c in i.candidates
            if c.score is not None
        ]
        assert min(scores) >= 0
        assert max(scores) <= 100

    def test_candidates_point_to_interview(self) -> None:
        """Every candidate names the interview that contains it."""
        for interview in SEED_INTERVIEWS.values():
            for candidate in interview.candidates:
                assert candidate.interview_id == interview.id

    def test_published_at_matches_status(self) -> None:
        """Active and paused interviews were published and drafts were not."""
        for interview in SEED_INTERVIEWS.values():
            if interview.status in ("active", "paused"):
                assert interview.published_at is not None
            if interview.status == "draft":
                assert interview.published_at is None

    def test_seed_is_deterministic(self) -> None:
        """The same seed builds the same interviews."""
        assert seed_interviews(7) == SEED_INTERVIEWS
