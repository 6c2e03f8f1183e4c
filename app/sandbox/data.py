"""Deterministic seed data for the sandbox user-service and interview-service."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from app.sandbox.records import (
    CANDIDATE_STATUSES,
    INTERVIEW_STATUSES,
    CandidateRecord,
    CandidateStatus,
    Difficulty,
    InterviewRecord,
    InterviewStatus,
    ProfileRecord,
    Role,
    SettingsRecord,
    UserRecord,
)

# Seeded timestamps lie before this instant, so records created at run time sort
# after them.
SEED_EPOCH = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
USER_COUNT = 60
# Every EXHAUSTED_QUOTA_STEP-th user ("8", "16", ...) starts with quotaUsed equal to
# quotaLimit, so a reservation for them gets 409.
EXHAUSTED_QUOTA_STEP = 8

FIRST_NAMES = (
    "Amara", "Bruno", "Chiara", "Dmitri", "Elena", "Farah", "Gustavo", "Hana",
    "Ines", "Jonas", "Kenji", "Lena", "Mateo", "Nadia", "Oskar", "Priya",
    "Quentin", "Rosa", "Samir", "Tereza", "Umar", "Valeria", "Wen", "Ximena",
    "Yusuf", "Zofia", "Aiden", "Beatriz", "Carlos", "Daria",
)  # fmt: skip
LAST_NAMES = (
    "Abebe", "Bianchi", "Costa", "Dubois", "Eriksson", "Fischer", "Garcia",
    "Haddad", "Ivanova", "Jensen", "Kowalski", "Laurent", "Moreau", "Nakamura",
    "Okafor", "Petrov", "Quinn", "Rossi", "Silva", "Tanaka", "Umarov", "Varga",
    "Weber", "Xu", "Yilmaz", "Zhang",
)  # fmt: skip
COMPANIES = (
    ("Northwind Labs", "northwind.example"),
    ("Bluefin Analytics", "bluefin.example"),
    ("Copperleaf Health", "copperleaf.example"),
    ("Driftwood Games", "driftwood.example"),
    ("Evergreen Logistics", "evergreen.example"),
    ("Foxglove Finance", "foxglove.example"),
    ("Granite Robotics", "granite.example"),
    ("Harbor Energy", "harbor.example"),
)
POSITIONS: dict[Role, tuple[str, ...]] = {
    "admin": ("People Operations Lead", "HR Systems Administrator"),
    "recruiter": ("Technical Recruiter", "Talent Partner", "Head of Talent"),
    "interviewer": ("Staff Engineer", "Engineering Manager", "Senior Data Scientist"),
}
BIOS = (
    "Hiring for distributed systems teams since 2018.",
    "Focused on fair, structured interviews for engineering roles.",
    "Former backend engineer who now builds hiring pipelines.",
    "Runs the campus hiring programme and loves a good take-home task.",
    "Interviews for platform and reliability roles.",
)
TIMEZONES = (
    "Europe/Berlin",
    "Europe/Lisbon",
    "America/New_York",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Africa/Lagos",
    "Australia/Sydney",
)
LEVELS = ("Junior", "Mid-level", "Senior", "Staff")
JOBS = (
    "Backend Engineer",
    "Frontend Engineer",
    "Data Engineer",
    "Site Reliability Engineer",
    "Mobile Developer",
    "Product Designer",
    "QA Engineer",
    "Security Engineer",
)
STAGES = ("phone screen", "technical interview", "system design", "pairing session")
DESCRIPTIONS = (
    "Live coding on a small service with a focus on testing.",
    "Architecture discussion around a high-traffic API.",
    "Walk through a past project, then a short debugging exercise.",
    "Structured questions on trade-offs, failure modes and monitoring.",
)
CANDIDATE_DOMAINS = ("example.com", "example.org", "example.net")
DURATIONS = (900, 1800, 2700, 3600, 5400, 7200)
DIFFICULTIES: tuple[Difficulty, ...] = ("easy", "medium", "hard")
ROLES: tuple[Role, ...] = ("admin", "recruiter", "interviewer")

# Relative weights, in the order of INTERVIEW_STATUSES and CANDIDATE_STATUSES.
INTERVIEW_STATUS_WEIGHTS = (2, 4, 1.5, 2.5)
CANDIDATE_STATUS_WEIGHTS: dict[InterviewStatus, tuple[float, ...]] = {
    "draft": (1, 0, 0, 0),
    "active": (3, 2, 3.5, 1.5),
    "paused": (3, 2, 3.5, 1.5),
    "archived": (0.5, 0.5, 6, 3),
}


def seeded_user_ids(seed: int = 7) -> list[str]:
    """Return the ids of the seeded users, in creation order."""
    return list(seed_users(seed))


def seed_users(seed: int = 7) -> dict[str, UserRecord]:
    """Build the seeded users, with activity counts taken from `seed_interviews`."""
    rng = random.Random(f"{seed}:users")
    interviews = seed_interviews(seed)
    taken_emails: set[str] = set()
    users: dict[str, UserRecord] = {}
    for number in range(1, USER_COUNT + 1):
        user = _seed_user(rng, number, taken_emails)
        _apply_activity(user, interviews.values())
        users[user.id] = user
    return users


def seed_interviews(seed: int = 7) -> dict[str, InterviewRecord]:
    """Build 3 to 12 interviews with candidates for every seeded user id."""
    rng = random.Random(f"{seed}:interviews")
    interview_numbers = itertools.count(1)
    candidate_numbers = itertools.count(1)
    interviews: dict[str, InterviewRecord] = {}
    for number in range(1, USER_COUNT + 1):
        for status in _seed_statuses(rng):
            interview = _seed_interview(
                rng, str(number), status, next(interview_numbers)
            )
            interview.candidates = list(
                _seed_candidates(rng, interview, candidate_numbers)
            )
            interviews[interview.id] = interview
    return interviews


def _seed_user(rng: random.Random, number: int, taken_emails: set[str]) -> UserRecord:
    first_name = rng.choice(FIRST_NAMES)
    last_name = rng.choice(LAST_NAMES)
    company, domain = rng.choice(COMPANIES)
    role = rng.choices(ROLES, weights=(1, 5, 4))[0]
    created_at = _before(rng, SEED_EPOCH - timedelta(days=300), days=420)
    quota_limit = rng.randint(5, 50)
    if number % EXHAUSTED_QUOTA_STEP == 0:
        quota_used = quota_limit
    else:
        quota_used = rng.randint(0, quota_limit - 1)
    profile = ProfileRecord(
        bio=rng.choice(BIOS),
        company=company,
        position=rng.choice(POSITIONS[role]),
        timezone=rng.choice(TIMEZONES),
        avatar_url=_seed_avatar_url(rng, number),
        updated_at=_after(rng, created_at, days=200),
    )
    return UserRecord(
        id=str(number),
        email=_unique_email(first_name, last_name, domain, number, taken_emails),
        first_name=first_name,
        last_name=last_name,
        role=role,
        is_active=rng.random() > 0.1,
        created_at=created_at,
        profile=profile,
        quota_limit=quota_limit,
        quota_used=quota_used,
        interviews_created=0,
        candidates_invited=0,
        last_active_at=profile.updated_at,
    )


def _seed_avatar_url(rng: random.Random, number: int) -> str | None:
    if rng.random() < 0.25:
        return None
    return f"https://avatars.example.com/u/{number}.png"


def _unique_email(
    first_name: str, last_name: str, domain: str, number: int, taken: set[str]
) -> str:
    email = f"{first_name}.{last_name}@{domain}".lower()
    if email in taken:
        email = f"{first_name}.{last_name}{number}@{domain}".lower()
    taken.add(email)
    return email


def _apply_activity(user: UserRecord, interviews: Iterable[InterviewRecord]) -> None:
    own = [interview for interview in interviews if interview.user_id == user.id]
    user.interviews_created = len(own)
    user.candidates_invited = sum(len(interview.candidates) for interview in own)
    latest = max((interview.updated_at for interview in own), default=None)
    if latest is not None and latest > user.last_active_at:
        user.last_active_at = latest


def _seed_statuses(rng: random.Random) -> list[InterviewStatus]:
    # Three distinct statuses first, so every user shows a varied list.
    statuses = rng.sample(INTERVIEW_STATUSES, 3)
    extra = rng.randint(0, 9)
    statuses += rng.choices(INTERVIEW_STATUSES, INTERVIEW_STATUS_WEIGHTS, k=extra)
    return statuses


def _seed_interview(
    rng: random.Random, user_id: str, status: InterviewStatus, number: int
) -> InterviewRecord:
    created_at = _before(rng, SEED_EPOCH - timedelta(days=2), days=270)
    published_at: datetime | None = None
    was_published = status in ("active", "paused") or (
        status == "archived" and rng.random() < 0.7
    )
    if was_published:
        published_at = _after(rng, created_at, days=3)
    title = f"{rng.choice(LEVELS)} {rng.choice(JOBS)}: {rng.choice(STAGES)}"
    description = rng.choice(DESCRIPTIONS) if rng.random() < 0.75 else None
    return InterviewRecord(
        id=f"iv-{number:04d}",
        user_id=user_id,
        title=title,
        description=description,
        status=status,
        settings=_seed_settings(rng),
        created_at=created_at,
        updated_at=_after(rng, published_at or created_at, days=20),
        published_at=published_at,
    )


def _seed_settings(rng: random.Random) -> SettingsRecord:
    return SettingsRecord(
        duration=rng.choice(DURATIONS),
        difficulty=rng.choice(DIFFICULTIES),
        record_video=rng.random() < 0.7,
        record_audio=rng.random() < 0.9,
        allow_retakes=rng.random() < 0.3,
    )


def _seed_candidates(
    rng: random.Random, interview: InterviewRecord, numbers: Iterator[int]
) -> Iterator[CandidateRecord]:
    count = rng.randint(0, 3) if interview.status == "draft" else rng.randint(2, 15)
    weights = CANDIDATE_STATUS_WEIGHTS[interview.status]
    for _ in range(count):
        status = rng.choices(CANDIDATE_STATUSES, weights)[0]
        yield _seed_candidate(rng, interview, status, next(numbers))


def _seed_candidate(
    rng: random.Random,
    interview: InterviewRecord,
    status: CandidateStatus,
    number: int,
) -> CandidateRecord:
    first_name = rng.choice(FIRST_NAMES)
    last_name = rng.choice(LAST_NAMES)
    domain = rng.choice(CANDIDATE_DOMAINS)
    # The candidate number keeps e-mails unique within every interview.
    email = f"{first_name}.{last_name}{number}@{domain}".lower()
    invited_at = _after(rng, interview.published_at or interview.created_at, days=15)
    completed_at = None
    score = None
    if status == "completed":
        completed_at = _after(rng, invited_at, days=7)
        score = rng.randint(35, 98)
    return CandidateRecord(
        id=f"cand-{number:05d}",
        interview_id=interview.id,
        email=email,
        first_name=first_name,
        last_name=last_name,
        status=status,
        invited_at=invited_at,
        completed_at=completed_at,
        score=score,
    )


def _before(rng: random.Random, end: datetime, *, days: int) -> datetime:
    """Pick a whole-second instant up to ``days`` days before ``end``."""
    return end - timedelta(seconds=rng.randint(0, days * 86_400))


def _after(rng: random.Random, start: datetime, *, days: int) -> datetime:
    """Pick a whole-second instant up to ``days`` days after ``start``, capped."""
    moment = start + timedelta(seconds=rng.randint(60, days * 86_400))
    return min(moment, SEED_EPOCH)
