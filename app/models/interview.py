"""Payloads of interview-service."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from app.models.base import ApiModel, UpdateModel

__all__ = [
    "Candidate",
    "CandidateCreate",
    "CandidateList",
    "CandidateStatus",
    "Difficulty",
    "Interview",
    "InterviewCreate",
    "InterviewList",
    "InterviewSettings",
    "InterviewStats",
    "InterviewStatus",
    "InterviewUpdate",
    "InterviewsByStatus",
    "UserInterviewStats",
]

InterviewStatus = Literal["draft", "active", "paused", "archived"]
CandidateStatus = Literal["invited", "in_progress", "completed", "rejected"]
Difficulty = Literal["easy", "medium", "hard"]


class InterviewSettings(ApiModel):
    """Recording and timing options of an interview; ``duration`` is in seconds."""

    duration: int = Field(default=3600, ge=60, le=14400)
    difficulty: Difficulty = "medium"
    record_video: bool = True
    record_audio: bool = True
    allow_retakes: bool = False


class Interview(ApiModel):
    """An interview and its current status."""

    id: str
    user_id: str
    title: str
    description: str | None = None
    status: InterviewStatus
    settings: InterviewSettings
    candidate_count: int
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None = None


class InterviewCreate(UpdateModel):
    """A new interview; it starts as a draft."""

    user_id: str
    title: str = Field(min_length=1, max_length=200)
    description: str | None = None
    settings: InterviewSettings | None = None


class InterviewUpdate(UpdateModel):
    """Fields of an interview to change; ``settings`` replaces the whole object."""

    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = None
    settings: InterviewSettings | None = None


class InterviewList(ApiModel):
    """Interviews of a user, newest first; ``total`` counts all matches."""

    interviews: list[Interview]
    total: int


class Candidate(ApiModel):
    """A person invited to an interview."""

    id: str
    interview_id: str
    email: str
    first_name: str
    last_name: str
    status: CandidateStatus
    invited_at: datetime
    completed_at: datetime | None = None
    score: float | None = None


class CandidateCreate(UpdateModel):
    """A candidate to invite."""

    email: str
    first_name: str
    last_name: str


class CandidateList(ApiModel):
    """Candidates of an interview."""

    candidates: list[Candidate]
    total: int


class InterviewStats(ApiModel):
    """Candidate counts of one interview."""

    interview_id: str
    candidates_total: int
    candidates_invited: int
    candidates_in_progress: int
    candidates_completed: int
    candidates_rejected: int
    completion_rate: float
    average_score: float | None = None


class InterviewsByStatus(ApiModel):
    """Number of interviews in each status."""

    draft: int = 0
    active: int = 0
    paused: int = 0
    archived: int = 0


class UserInterviewStats(ApiModel):
    """Interview and candidate counts of one user."""

    user_id: str
    interviews_total: int
    interviews_by_status: InterviewsByStatus
    candidates_total: int
    candidates_completed: int
    average_score: float | None = None
