"""InterviewServiceProxy: typed calls to interview-service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Unpack

from app.models.interview import (
    Candidate,
    CandidateCreate,
    CandidateList,
    Interview,
    InterviewCreate,
    InterviewList,
    InterviewStats,
    InterviewStatus,
    InterviewUpdate,
    UserInterviewStats,
)
from app.proxies.base import BaseServiceProxy, RequestOptions, with_idempotency_key
from app.proxies.wire import path_segment

__all__ = ["InterviewServiceProxy"]


class InterviewServiceProxy(BaseServiceProxy):
    """Client of interview-service: interviews, candidates and their stats."""

    service_name = "interview-service"
    cacheable_reads = frozenset(
        {"get_interview", "get_candidates", "get_interview_stats"}
    )

    async def create_interview(
        self,
        interview: InterviewCreate | Mapping[str, Any],
        **options: Unpack[RequestOptions],
    ) -> Interview:
        """Create an interview as a draft."""
        body = InterviewCreate.model_validate(interview)
        options = with_idempotency_key(options)
        return await self._write(
            "create_interview", "POST", "/interviews", body, Interview, options
        )

    async def get_interview(
        self, interview_id: str, **options: Unpack[RequestOptions]
    ) -> Interview:
        """Fetch one interview by id."""
        return await self._read_one(
            "get_interview", interview_id, "/interviews/{}", Interview, options
        )

    async def get_user_interviews(
        self,
        user_id: str,
        *,
        limit: int = 20,
        status: InterviewStatus | None = None,
        **options: Unpack[RequestOptions],
    ) -> InterviewList:
        """List a user's interviews, newest first, optionally of one status."""
        params = {"limit": str(limit)}
        if status is not None:
            params["status"] = status
        path = f"/users/{path_segment(user_id)}/interviews"
        return await self._read(
            "get_user_interviews", path, InterviewList, options, params
        )

    async def update_interview(
        self,
        interview_id: str,
        update: InterviewUpdate | Mapping[str, Any],
        **options: Unpack[RequestOptions],
    ) -> Interview:
        """Change the fields of an interview that ``update`` sets."""
        body = InterviewUpdate.model_validate(update)
        path = f"/interviews/{path_segment(interview_id)}"
        options = with_idempotency_key(options)
        try:
            return await self._write(
                "update_interview", "PATCH", path, body, Interview, options
            )
        finally:
            await self._invalidate(interview_id)

    async def delete_interview(
        self, interview_id: str, **options: Unpack[RequestOptions]
    ) -> None:
        """Delete an interview."""
        path = f"/interviews/{path_segment(interview_id)}"
        options = with_idempotency_key(options)
        try:
            await self._write("delete_interview", "DELETE", path, None, None, options)
        finally:
            await self._invalidate(interview_id)

    async def get_candidates(
        self, interview_id: str, **options: Unpack[RequestOptions]
    ) -> CandidateList:
        """List the candidates of an interview."""
        return await self._read_one(
            "get_candidates",
            interview_id,
            "/interviews/{}/candidates",
            CandidateList,
            options,
        )

    async def add_candidate(
        self,
        interview_id: str,
        candidate: CandidateCreate | Mapping[str, Any],
        **options: Unpack[RequestOptions],
    ) -> Candidate:
        """Invite a candidate to an interview."""
        body = CandidateCreate.model_validate(candidate)
        path = f"/interviews/{path_segment(interview_id)}/candidates"
        options = with_idempotency_key(options)
        try:
            return await self._write(
                "add_candidate", "POST", path, body, Candidate, options
            )
        finally:
            await self._invalidate(interview_id)

    async def get_interview_stats(
        self, interview_id: str, **options: Unpack[RequestOptions]
    ) -> InterviewStats:
        """Fetch the candidate counts of an interview."""
        return await self._read_one(
            "get_interview_stats",
            interview_id,
            "/interviews/{}/stats",
            InterviewStats,
            options,
        )

    async def get_user_interview_stats(
        self, user_id: str, **options: Unpack[RequestOptions]
    ) -> UserInterviewStats:
        """Fetch the interview and candidate counts of a user."""
        return await self._read_one(
            "get_user_interview_stats",
            user_id,
            "/users/{}/interview-stats",
            UserInterviewStats,
            options,
        )

    async def publish_interview(
        self, interview_id: str, **options: Unpack[RequestOptions]
    ) -> Interview:
        """Make a draft or paused interview active."""
        return await self._change_status(interview_id, "publish", options)

    async def pause_interview(
        self, interview_id: str, **options: Unpack[RequestOptions]
    ) -> Interview:
        """Pause an active interview."""
        return await self._change_status(interview_id, "pause", options)

    async def archive_interview(
        self, interview_id: str, **options: Unpack[RequestOptions]
    ) -> Interview:
        """Archive an interview that is not archived yet."""
        return await self._change_status(interview_id, "archive", options)

    async def _change_status(
        self, interview_id: str, action: str, options: RequestOptions
    ) -> Interview:
        path = f"/interviews/{path_segment(interview_id)}/{action}"
        options = with_idempotency_key(options)
        try:
            return await self._write(
                f"{action}_interview", "POST", path, None, Interview, options
            )
        finally:
            await self._invalidate(interview_id)
