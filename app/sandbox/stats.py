"""Candidate and interview counts that interview-service reports as stats."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from app.sandbox.records import (
    INTERVIEW_STATUSES,
    CandidateRecord,
    InterviewRecord,
    JsonObject,
)


def interview_stats_to_json(interview: InterviewRecord) -> JsonObject:
    """Build the wire ``InterviewStats`` object from the interview's candidates."""
    candidates = interview.candidates
    statuses = Counter(candidate.status for candidate in candidates)
    total = len(candidates)
    completed = statuses["completed"]
    return {
        "interviewId": interview.id,
        "candidatesTotal": total,
        "candidatesInvited": statuses["invited"],
        "candidatesInProgress": statuses["in_progress"],
        "candidatesCompleted": completed,
        "candidatesRejected": statuses["rejected"],
        "completionRate": completed / total if total else 0.0,
        "averageScore": average_score(candidates),
    }


def user_interview_stats_to_json(
    user_id: str, interviews: Sequence[InterviewRecord]
) -> JsonObject:
    """Build the wire ``UserInterviewStats`` object, all zeros without interviews."""
    candidates = [item for interview in interviews for item in interview.candidates]
    statuses = Counter(interview.status for interview in interviews)
    by_status = {status: statuses[status] for status in INTERVIEW_STATUSES}
    completed = sum(1 for item in candidates if item.status == "completed")
    return {
        "userId": user_id,
        "interviewsTotal": len(interviews),
        "interviewsByStatus": by_status,
        "candidatesTotal": len(candidates),
        "candidatesCompleted": completed,
        "averageScore": average_score(candidates),
    }


def average_score(candidates: Iterable[CandidateRecord]) -> float | None:
    """Return the mean score of scored candidates, or ``None`` when none has one."""
    scores = [item.score for item in candidates if item.score is not None]
    if not scores:
        return None
    return sum(scores) / len(scores)
