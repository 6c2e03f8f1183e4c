"""Typed payloads of user-service, interview-service and the dashboard."""

from app.models.base import ApiModel
from app.models.dashboard import Dashboard
from app.models.interview import (
    Candidate,
    CandidateCreate,
    CandidateList,
    CandidateStatus,
    Difficulty,
    Interview,
    InterviewCreate,
    InterviewList,
    InterviewsByStatus,
    InterviewSettings,
    InterviewStats,
    InterviewStatus,
    InterviewUpdate,
    UserInterviewStats,
)
from app.models.user import (
    QuotaReservation,
    User,
    UserExists,
    UserList,
    UserProfile,
    UserProfileUpdate,
    UserRole,
    UserStats,
)

__all__ = [
    "ApiModel",
    "Candidate",
    "CandidateCreate",
    "CandidateList",
    "CandidateStatus",
    "Dashboard",
    "Difficulty",
    "Interview",
    "InterviewCreate",
    "InterviewList",
    "InterviewSettings",
    "InterviewStats",
    "InterviewStatus",
    "InterviewUpdate",
    "InterviewsByStatus",
    "QuotaReservation",
    "User",
    "UserExists",
    "UserInterviewStats",
    "UserList",
    "UserProfile",
    "UserProfileUpdate",
    "UserRole",
    "UserStats",
]
