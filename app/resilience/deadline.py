"""Call deadlines that flow through a task and its children as a context variable."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar

from app.scopes import ContextVarScope

__all__ = [
    "DEADLINE_HEADER",
    "current_deadline",
    "deadline_scope",
    "parse_deadline_header",
]

# Milliseconds the caller will still wait, relative so that clocks need not agree.
DEADLINE_HEADER = "X-Request-Deadline-Ms"

# Absolute time.monotonic() value by which every proxy call must end.
_deadline: ContextVar[float | None] = ContextVar("service_call_deadline", default=None)


# Returns the deadline of the current context, as a time.monotonic() value. The
# context variable's own method, rather than a function around it, since every
# call reads it.
current_deadline: Callable[[], float | None] = _deadline.get


def deadline_scope(seconds: float) -> AbstractContextManager[float]:
    """Make every proxy call in the block end within ``seconds`` from its start.

    A nested scope can only shorten the deadline, never extend it. Tasks created
    inside the block inherit it, so one scope covers an ``asyncio.gather`` fan-out.
    The block gets the deadline as a time.monotonic() value.
    """
    if not seconds >= 0:
        # Written so that NaN fails too.
        message = f"deadline must be 0 seconds or more, got {seconds}"
        raise ValueError(message)

    def deadline() -> float:
        proposed = time.monotonic() + seconds
        outer = _deadline.get()
        return proposed if outer is None else min(outer, proposed)

    return ContextVarScope(_deadline, deadline)


# Digits accepted in X-Request-Deadline-Ms: up to about 31 years.
_MAX_DIGITS = 12


def parse_deadline_header(value: str | None) -> float | None:
    """Return the seconds in an X-Request-Deadline-Ms value, None when absent.

    Raises:
        ValueError: the value is not a whole number of milliseconds of 0 or
            more, of at most 12 digits.
    """
    if value is None:
        return None
    text = value.strip()
    # isdigit() alone accepts digits such as "²" or Arabic-Indic ones.
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_DIGITS:
        message = (
            f"{DEADLINE_HEADER} must be a whole number of milliseconds of at most "
            f"{_MAX_DIGITS} digits, got {value[:20]!r}"
        )
        raise ValueError(message)
    return int(text) / 1000
