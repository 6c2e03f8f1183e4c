"""Request bodies accepted by the sandbox services, validated strictly."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from app.sandbox.records import Difficulty, SettingsRecord

# Strict mode rejects coercions such as "5" for an int or 1 for a bool, and forbidding
# extra fields rejects snake_case names as unknown.
_STRICT_CAMEL = ConfigDict(
    alias_generator=to_camel,
    extra="forbid",
    frozen=True,
    strict=True,
)


def _reject_sent_null(value: object) -> object:
    if value is None:
        raise PydanticCustomError("not_null", "Input should not be null")
    return value


Title = Annotated[str, Field(min_length=1, max_length=200)]
Name = Annotated[str, Field(min_length=1)]


class ProfileUpdateBody(BaseModel):
    """``UserProfileUpdate``: any subset of the editable profile fields."""

    model_config = _STRICT_CAMEL

    bio: str | None = None
    company: str | None = None
    position: str | None = None
    timezone: str | None = None
    avatar_url: str | None = None

    # Only avatarUrl is nullable on the wire. The other defaults of None only tell
    # an omitted field from a sent one, so a sent null is rejected.
    _reject_null = field_validator("bio", "company", "position", "timezone")(
        _reject_sent_null
    )


class SettingsBody(BaseModel):
    """``InterviewSettings``: a complete settings object, ``duration`` in seconds."""

    model_config = _STRICT_CAMEL

    duration: Annotated[int, Field(ge=60, le=14_400)]
    difficulty: Difficulty
    record_video: bool
    record_audio: bool
    allow_retakes: bool

    def to_record(self) -> SettingsRecord:
        """Convert to the stored settings value."""
        return SettingsRecord(
            duration=self.duration,
            difficulty=self.difficulty,
            record_video=self.record_video,
            record_audio=self.record_audio,
            allow_retakes=self.allow_retakes,
        )


class InterviewCreateBody(BaseModel):
    """``InterviewCreate``: a new interview owned by ``userId``."""

    model_config = _STRICT_CAMEL

    user_id: Annotated[str, Field(min_length=1)]
    title: Title
    description: str | None = None
    settings: SettingsBody | None = None

    _reject_null = field_validator("settings")(_reject_sent_null)


class InterviewUpdateBody(BaseModel):
    """``InterviewUpdate``: any subset of title, description and settings."""

    model_config = _STRICT_CAMEL

    title: Title | None = None
    description: str | None = None
    settings: SettingsBody | None = None

    _reject_null = field_validator("title", "settings")(_reject_sent_null)


class CandidateCreateBody(BaseModel):
    """``CandidateCreate``: a candidate to invite, with an e-mail containing "@"."""

    model_config = _STRICT_CAMEL

    email: str
    first_name: Name
    last_name: Name

    @field_validator("email")
    @classmethod
    def _require_at_sign(cls, value: str) -> str:
        if "@" not in value:
            raise PydanticCustomError("email_at_sign", "Input should contain '@'")
        return value
