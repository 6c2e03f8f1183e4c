"""In-memory records of the sandbox services and their JSON wire shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

JsonObject = dict[str, object]

Role = Literal["admin", "recruiter", "interviewer"]
InterviewStatus = Literal["draft", "active", "paused", "archived"]
CandidateStatus = Literal["invited", "in_progress", "completed", "rejected"]
Difficulty = Literal["easy", "medium", "hard"]

INTERVIEW_STATUSES: tuple[InterviewStatus, ...] = (
    "draft",
    "active",
    "paused",
    "archived",
)
CANDIDATE_STATUSES: tuple[CandidateStatus, ...] = (
    "invited",
    "in_progress",
    "completed",
    "rejected",
)


def format_timestamp(moment: datetime) -> str:
    """Format an aware datetime as ISO 8601 in UTC with a ``Z`` suffix."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_optional(moment: datetime | None) -> str | None:
    """Format a timestamp like `format_timestamp`, passing ``None`` through."""
    if moment is None:
        return None
    return format_timestamp(moment)


def utc_now() -> datetime:
    """Return the current time in UTC, truncated to whole seconds."""
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class ProfileRecord:
    """Editable profile fields of one user."""

    bio: str
    company: str
    position: str
    timezone: str
    avatar_url: str | None
    updated_at: datetime


@dataclass
class UserRecord:
    """One user of user-service with profile, quota and activity."""

    id: str
    email: str
    first_name: str
    last_name: str
    role: Role
    is_active: bool
    created_at: datetime
    profile: ProfileRecord
    quota_limit: int
    quota_used: int
    interviews_created: int
    candidates_invited: int
    last_active_at: datetime


@dataclass(frozen=True)
class ReservationRecord:
    """One quota unit held by a user until the reservation is deleted."""

    reservation_id: str
    user_id: str
    created_at: datetime


@dataclass(frozen=True)
class SettingsRecord:
    """Interview settings, with ``duration`` in seconds."""

    duration: int
    difficulty: Difficulty
    record_video: bool
    record_audio: bool
    allow_retakes: bool


DEFAULT_SETTINGS = SettingsRecord(
    duration=3600,
    difficulty="medium",
    record_video=True,
    record_audio=True,
    allow_retakes=False,
)


@dataclass
class CandidateRecord:
    """One candidate invited to an interview."""

    id: str
    interview_id: str
    email: str
    first_name: str
    last_name: str
    status: CandidateStatus
    invited_at: datetime
    completed_at: datetime | None
    score: int | None


@dataclass
class InterviewRecord:
    """One interview of interview-service with its candidates."""

    id: str
    user_id: str
    title: str
    description: str | None
    status: InterviewStatus
    settings: SettingsRecord
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    candidates: list[CandidateRecord] = field(default_factory=list)


def user_to_json(user: UserRecord) -> JsonObject:
    """Build the wire ``User`` object."""
    return {
        "id": user.id,
        "email": user.email,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "role": user.role,
        "isActive": user.is_active,
        "createdAt": format_timestamp(user.created_at),
    }


def profile_to_json(user: UserRecord) -> JsonObject:
    """Build the wire ``UserProfile`` object."""
    profile = user.profile
    return {
        "userId": user.id,
        "bio": profile.bio,
        "company": profile.company,
        "position": profile.position,
        "timezone": profile.timezone,
        "avatarUrl": profile.avatar_url,
        "updatedAt": format_timestamp(profile.updated_at),
    }


def reservation_to_json(reservation: ReservationRecord, user: UserRecord) -> JsonObject:
    """Build the wire ``QuotaReservation`` object with the user's current quota."""
    return {
        "reservationId": reservation.reservation_id,
        "userId": reservation.user_id,
        "createdAt": format_timestamp(reservation.created_at),
        "quotaUsed": user.quota_used,
        "quotaLimit": user.quota_limit,
    }


def user_stats_to_json(user: UserRecord) -> JsonObject:
    """Build the wire ``UserStats`` object."""
    return {
        "userId": user.id,
        "interviewsCreated": user.interviews_created,
        "candidatesInvited": user.candidates_invited,
        "quotaLimit": user.quota_limit,
        "quotaUsed": user.quota_used,
        "lastActiveAt": format_timestamp(user.last_active_at),
    }


def settings_to_json(settings: SettingsRecord) -> JsonObject:
    """Build the wire ``InterviewSettings`` object."""
    return {
        "duration": settings.duration,
        "difficulty": settings.difficulty,
        "recordVideo": settings.record_video,
        "recordAudio": settings.record_audio,
        "allowRetakes": settings.allow_retakes,
    }


def interview_to_json(interview: InterviewRecord) -> JsonObject:
    """Build the wire ``Interview`` object."""
    return {
        "id": interview.id,
        "userId": interview.user_id,
        "title": interview.title,
        "description": interview.description,
        "status": interview.status,
        "settings": settings_to_json(interview.settings),
        "candidateCount": len(interview.candidates),
        "createdAt": format_timestamp(interview.created_at),
        "updatedAt": format_timestamp(interview.updated_at),
        "publishedAt": format_optional(interview.published_at),
    }


def candidate_to_json(candidate: CandidateRecord) -> JsonObject:
    """Build the wire ``Candidate`` object."""
    return {
        "id": candidate.id,
        "interviewId": candidate.interview_id,
        "email": candidate.email,
        "firstName": candidate.first_name,
        "lastName": candidate.last_name,
        "status": candidate.status,
        "invitedAt": format_timestamp(candidate.invited_at),
        "completedAt": format_optional(candidate.completed_at),
        "score": candidate.score,
    }
