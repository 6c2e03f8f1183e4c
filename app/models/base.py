"""Base model for payloads: snake_case in Python, camelCase on the wire."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = ["ApiModel", "UpdateModel"]


class ApiModel(BaseModel):
    """A payload of the service contracts.

    Fields are read from camelCase or snake_case keys and written as camelCase.
    Unknown fields in a response are ignored, so that an upstream can add fields
    without breaking its callers.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
    )


class UpdateModel(ApiModel):
    """A partial update: only the fields that the caller set are sent."""

    model_config = ConfigDict(extra="forbid")
