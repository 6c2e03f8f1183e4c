"""Retry-After parsing and the cool-down that a service's Retry-After imposes."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["Cooldown", "parse_retry_after"]


def parse_retry_after(
    value: str | None, *, now: datetime | None = None
) -> float | None:
    """Return the seconds a Retry-After value requests, or None when unusable.

    RFC 9110, section 10.2.3, allows delta-seconds or an HTTP-date. A date in the
    past gives 0.0; an unparsable value is ignored rather than trusted.
    """
    if value is None:
        return None
    text = value.strip()
    # isdigit() alone accepts digits such as "²" that float() rejects.
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    reference = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())


class Cooldown:
    """A time before which no caller of one service should send another attempt.

    Every caller of the service shares it, so a Retry-After seen by one call holds
    back the concurrent calls too, instead of each learning it from its own 503.
    """

    __slots__ = ("until",)

    def __init__(self) -> None:
        # The time.monotonic() before which callers wait; 0.0 when none is set.
        self.until = 0.0

    def extend(self, seconds: float) -> None:
        """Hold callers back for ``seconds`` from now, unless already held longer."""
        self.until = max(self.until, time.monotonic() + seconds)

    def remaining(self) -> float:
        """Return the seconds left, 0.0 when callers may go ahead."""
        until = self.until
        if not until:
            return 0.0
        left = until - time.monotonic()
        if left <= 0:
            self.until = 0.0
            return 0.0
        return left
