"""Sandbox interview-service: interviews, their candidates, status changes, stats."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from app.sandbox.common import ApiError, health_response, parse_body, query_int
from app.sandbox.data import seed_interviews
from app.sandbox.faults import SandboxFaults
from app.sandbox.middlewares import build_middlewares
from app.sandbox.records import (
    DEFAULT_SETTINGS,
    INTERVIEW_STATUSES,
    CandidateRecord,
    InterviewRecord,
    InterviewStatus,
    candidate_to_json,
    interview_to_json,
    utc_now,
)
from app.sandbox.schemas import (
    CandidateCreateBody,
    InterviewCreateBody,
    InterviewUpdateBody,
)
from app.sandbox.stats import interview_stats_to_json, user_interview_stats_to_json

SERVICE_NAME = "interview-service"
DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 100


@dataclass(frozen=True)
class Transition:
    """A status change: the statuses it starts from and the one it leads to."""

    verb: str
    sources: frozenset[InterviewStatus]
    target: InterviewStatus


TRANSITIONS = {
    "publish": Transition("publish", frozenset({"draft", "paused"}), "active"),
    "pause": Transition("pause", frozenset({"active"}), "paused"),
    "archive": Transition(
        "archive", frozenset({"draft", "active", "paused"}), "archived"
    ),
}


@dataclass
class InterviewState:
    """Mutable interviews and id counters of one interview-service app."""

    interviews: dict[str, InterviewRecord]
    interview_numbers: itertools.count[int]
    candidate_numbers: itertools.count[int]

    @classmethod
    def from_seed(cls, seed: int) -> InterviewState:
        """Build the state from the seeded interviews, with counters after them."""
        interviews = seed_interviews(seed)
        candidate_total = sum(len(item.candidates) for item in interviews.values())
        return cls(
            interviews=interviews,
            interview_numbers=itertools.count(len(interviews) + 1),
            candidate_numbers=itertools.count(candidate_total + 1),
        )

    def find_interview(self, interview_id: str) -> InterviewRecord:
        """Return the interview with ``interview_id``, or raise a 404 `ApiError`."""
        interview = self.interviews.get(interview_id)
        if interview is None:
            raise ApiError(404, f"Interview '{interview_id}' was not found.")
        return interview

    def interviews_of(self, user_id: str) -> list[InterviewRecord]:
        """Return the interviews of ``user_id``, newest first."""
        own = [item for item in self.interviews.values() if item.user_id == user_id]
        return sorted(own, key=_creation_order, reverse=True)


INTERVIEW_STATE = web.AppKey("interview_state", InterviewState)


def create_interview_service_app(
    *, latency_ms: float = 0, seed: int = 7, faults: SandboxFaults | None = None
) -> web.Application:
    """Create the interview-service app with its own copy of the seeded interviews.

    ``faults`` lets a test inject failures into named routes, see `SandboxFaults`.
    """
    middlewares = build_middlewares(SERVICE_NAME, latency_ms=latency_ms, faults=faults)
    app = web.Application(middlewares=middlewares)
    app[INTERVIEW_STATE] = InterviewState.from_seed(seed)
    _add_routes(app.router)
    return app


def _add_routes(router: web.UrlDispatcher) -> None:
    # Route names are listed in the SandboxFaults docstring, which selects routes
    # by them.
    router.add_get("/health", get_health, name="interview_service_health")
    router.add_post("/interviews", create_interview, name="create_interview")
    router.add_get("/interviews/{id}", get_interview, name="get_interview")
    router.add_patch("/interviews/{id}", patch_interview, name="patch_interview")
    router.add_delete("/interviews/{id}", delete_interview, name="delete_interview")
    router.add_get(
        "/interviews/{id}/candidates", list_candidates, name="list_candidates"
    )
    router.add_post("/interviews/{id}/candidates", add_candidate, name="add_candidate")
    router.add_get(
        "/interviews/{id}/stats", get_interview_stats, name="get_interview_stats"
    )
    for action, transition in TRANSITIONS.items():
        handler: Handler = functools.partial(change_status, transition=transition)
        router.add_post(
            f"/interviews/{{id}}/{action}", handler, name=f"{action}_interview"
        )
    router.add_get(
        "/users/{userId}/interviews", list_user_interviews, name="list_user_interviews"
    )
    router.add_get(
        "/users/{userId}/interview-stats",
        get_user_interview_stats,
        name="get_user_interview_stats",
    )


def _state(request: web.Request) -> InterviewState:
    return request.app[INTERVIEW_STATE]


def _creation_order(interview: InterviewRecord) -> tuple[object, int]:
    # Ids are "iv-<number>", and the number breaks ties between equal timestamps.
    return (interview.created_at, int(interview.id.removeprefix("iv-")))


async def get_health(request: web.Request) -> web.Response:
    """Report that interview-service is up."""
    return health_response(SERVICE_NAME)


async def create_interview(request: web.Request) -> web.Response:
    """Create a draft interview from an ``InterviewCreate`` body."""
    state = _state(request)
    body = await parse_body(request, InterviewCreateBody)

    now = utc_now()
    interview = InterviewRecord(
        id=f"iv-{next(state.interview_numbers):04d}",
        user_id=body.user_id,
        title=body.title,
        description=body.description,
        status="draft",
        settings=body.settings.to_record() if body.settings else DEFAULT_SETTINGS,
        created_at=now,
        updated_at=now,
        published_at=None,
    )
    state.interviews[interview.id] = interview
    return web.json_response(interview_to_json(interview), status=201)


async def get_interview(request: web.Request) -> web.Response:
    """Send the ``Interview`` with the id in the path."""
    interview = _state(request).find_interview(request.match_info["id"])
    return web.json_response(interview_to_json(interview))


async def patch_interview(request: web.Request) -> web.Response:
    """Apply an ``InterviewUpdate``, unless the interview is archived."""
    interview = _state(request).find_interview(request.match_info["id"])
    update = await parse_body(request, InterviewUpdateBody)
    _reject_archived(interview, "updated")

    fields = update.model_fields_set
    if "title" in fields and update.title is not None:
        interview.title = update.title
    if "description" in fields:
        interview.description = update.description
    if "settings" in fields and update.settings is not None:
        interview.settings = update.settings.to_record()
    if fields:
        interview.updated_at = utc_now()
    return web.json_response(interview_to_json(interview))


async def delete_interview(request: web.Request) -> web.Response:
    """Delete the interview in the path together with its candidates."""
    state = _state(request)
    interview = state.find_interview(request.match_info["id"])
    del state.interviews[interview.id]
    return web.Response(status=204)


async def list_candidates(request: web.Request) -> web.Response:
    """Send every candidate of the interview in the path."""
    interview = _state(request).find_interview(request.match_info["id"])
    candidates = [candidate_to_json(item) for item in interview.candidates]
    return web.json_response({"candidates": candidates, "total": len(candidates)})


async def add_candidate(request: web.Request) -> web.Response:
    """Invite a candidate from a ``CandidateCreate`` body."""
    state = _state(request)
    interview = state.find_interview(request.match_info["id"])
    body = await parse_body(request, CandidateCreateBody)
    _reject_archived(interview, "given new candidates")
    _reject_duplicate_email(interview, body.email)

    now = utc_now()
    candidate = CandidateRecord(
        id=f"cand-{next(state.candidate_numbers):05d}",
        interview_id=interview.id,
        email=body.email,
        first_name=body.first_name,
        last_name=body.last_name,
        status="invited",
        invited_at=now,
        completed_at=None,
        score=None,
    )
    interview.candidates.append(candidate)
    interview.updated_at = now
    return web.json_response(candidate_to_json(candidate), status=201)


async def get_interview_stats(request: web.Request) -> web.Response:
    """Send the ``InterviewStats`` of the interview in the path."""
    interview = _state(request).find_interview(request.match_info["id"])
    return web.json_response(interview_stats_to_json(interview))


async def change_status(
    request: web.Request, *, transition: Transition
) -> web.Response:
    """Apply ``transition``, or reject with 409 from a status it does not allow."""
    interview = _state(request).find_interview(request.match_info["id"])
    if interview.status not in transition.sources:
        allowed = " or ".join(sorted(transition.sources))
        message = (
            f"Cannot {transition.verb} interview '{interview.id}' because its "
            f"status is {interview.status}, expected {allowed}."
        )
        raise ApiError(409, message)

    now = utc_now()
    interview.status = transition.target
    interview.updated_at = now
    if transition.target == "active" and interview.published_at is None:
        interview.published_at = now
    return web.json_response(interview_to_json(interview))


async def list_user_interviews(request: web.Request) -> web.Response:
    """Send the newest interviews of a user, optionally of one status."""
    limit = query_int(
        request, "limit", default=DEFAULT_LIST_LIMIT, minimum=1, maximum=MAX_LIST_LIMIT
    )
    status = _query_status(request)
    interviews = _state(request).interviews_of(request.match_info["userId"])
    if status is not None:
        interviews = [item for item in interviews if item.status == status]

    page = [interview_to_json(item) for item in interviews[:limit]]
    return web.json_response({"interviews": page, "total": len(interviews)})


async def get_user_interview_stats(request: web.Request) -> web.Response:
    """Send the ``UserInterviewStats`` of a user, zero counts for an unknown one."""
    user_id = request.match_info["userId"]
    interviews = _state(request).interviews_of(user_id)
    return web.json_response(user_interview_stats_to_json(user_id, interviews))


def _query_status(request: web.Request) -> InterviewStatus | None:
    raw = request.query.get("status")
    if raw is None:
        return None
    for status in INTERVIEW_STATUSES:
        if raw == status:
            return status
    allowed = ", ".join(INTERVIEW_STATUSES)
    message = f"Query parameter 'status' must be one of {allowed}, got '{raw}'."
    raise ApiError(422, message)


def _reject_archived(interview: InterviewRecord, change: str) -> None:
    if interview.status == "archived":
        message = f"Interview '{interview.id}' is archived and cannot be {change}."
        raise ApiError(409, message)


def _reject_duplicate_email(interview: InterviewRecord, email: str) -> None:
    # Most mail providers ignore case in addresses, so this check does too.
    email_key = email.casefold()
    if any(item.email.casefold() == email_key for item in interview.candidates):
        message = (
            f"Candidate e-mail '{email}' was already added to interview "
            f"'{interview.id}'."
        )
        raise ApiError(409, message)
