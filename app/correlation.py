"""Request and trace ids that follow a gateway request into every log line."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace

from app.scopes import ContextVarScope

__all__ = [
    "REQUEST_ID_HEADER",
    "add_correlation_ids",
    "current_request_id",
    "request_id_scope",
    "usable_request_id",
]

REQUEST_ID_HEADER = "X-Request-Id"
# Ids a caller may choose: short, and free of characters that could forge a log
# field or a header.
_USABLE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


# Returns the id of the request being handled, if any. The context variable's own
# method, rather than a function around it, since every call reads it.
current_request_id: Callable[[], str | None] = _request_id.get


def usable_request_id(candidate: str | None) -> str:
    """Return ``candidate`` when it is a safe id, or a new random one."""
    if candidate is not None and _USABLE_ID.fullmatch(candidate):
        return candidate
    # 128 random bits as 32 hex digits, the shape of a uuid4().hex. An id only
    # ties log lines together, so the process's generator is enough. uuid4
    # reads the OS's random source, which is a system call for every request.
    return f"{random.getrandbits(128):032x}"


def request_id_scope(request_id: str) -> AbstractContextManager[str]:
    """Tag every log line and upstream call in the block with ``request_id``."""
    return ContextVarScope(_request_id, lambda: request_id)


def add_correlation_ids(fields: dict[str, Any]) -> None:
    """Add ``request_id``, ``trace_id`` and ``span_id`` to a log record's fields.

    The request id is added while a gateway request is handled. The trace and
    span ids, in W3C hex form, are added while a valid span context is
    current: a span of an installed SDK, or the context a request brought.
    Fields the record already has are kept.
    """
    request_id = _request_id.get()
    if request_id is not None:
        fields.setdefault("request_id", request_id)
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        fields.setdefault("trace_id", trace.format_trace_id(span_context.trace_id))
        fields.setdefault("span_id", trace.format_span_id(span_context.span_id))
