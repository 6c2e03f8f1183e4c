"""Request ids that follow a gateway request into every log line and upstream call."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = [
    "REQUEST_ID_HEADER",
    "current_request_id",
    "request_id_scope",
    "usable_request_id",
]

REQUEST_ID_HEADER = "X-Request-Id"
# Ids a caller may choose: short, and free of characters that could forge a log
# field or a header.
_USABLE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    """Return the id of the request being handled, if any."""
    return _request_id.get()


def usable_request_id(candidate: str | None) -> str:
    """Return ``candidate`` when it is a safe id, or a new random one."""
    if candidate is not None and _USABLE_ID.fullmatch(candidate):
        return candidate
    return uuid.uuid4().hex


@contextmanager
def request_id_scope(request_id: str) -> Iterator[str]:
    """Tag every log line and upstream call in the block with ``request_id``."""
    token = _request_id.set(request_id)
    try:
        yield request_id
    finally:
        _request_id.reset(token)
