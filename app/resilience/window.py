"""Time-based rolling counters shared by the circuit breaker and the retry budget."""

from __future__ import annotations

import math

from app.resilience.clock import Clock

__all__ = ["RollingCounter"]


class RollingCounter:
    """Counts of several kinds of event over the last `window` seconds.

    The window is a fixed ring of `buckets` buckets, each `window / buckets`
    seconds wide, so memory does not grow with traffic. Buckets that fall out
    of the window are zeroed lazily on the next `add()` or `total()`, which
    costs at most `buckets` steps. Because whole buckets expire at once, an
    event stays counted for more than `window * (buckets - 1) / buckets` and
    at most `window` seconds.

    Kinds are the integers `0 .. kinds - 1`, which callers name with constants.
    Not thread-safe: use one instance from one thread or event loop.
    """

    __slots__ = (
        "_bucket_count",
        "_bucket_width",
        "_clock",
        "_counts",
        "_current",
        "_current_ends",
        "_kinds",
        "_totals",
    )

    def __init__(
        self, kinds: int, *, window: float, clock: Clock, buckets: int = 10
    ) -> None:
        if kinds < 1:
            message = f"kinds must be >= 1, got {kinds!r}"
            raise ValueError(message)
        if buckets < 1:
            message = f"buckets must be >= 1, got {buckets!r}"
            raise ValueError(message)
        if not (window > 0 and math.isfinite(window)):
            message = f"window must be a finite number of seconds > 0, got {window!r}"
            raise ValueError(message)

        self._kinds = kinds
        self._bucket_count = buckets
        self._bucket_width = window / buckets
        self._clock = clock
        # Bucket b stores its count of kind k at index b * kinds + k.
        self._counts = [0] * (kinds * buckets)
        self._totals = [0] * kinds
        self._current = 0
        self._current_ends = 0.0
        self._set_current(self._bucket_index())

    def add(self, kind: int) -> None:
        """Count one event of `kind` at the current time."""
        if self._clock() >= self._current_ends:
            self._expire()

        slot = (self._current % self._bucket_count) * self._kinds + kind
        self._counts[slot] += 1
        self._totals[kind] += 1

    def total(self, kind: int) -> int:
        """Return the number of events of `kind` in the window."""
        self._expire()
        return self._totals[kind]

    def totals(self) -> list[int]:
        """Return a copy of every kind's count in the window, indexed by kind."""
        self._expire()
        return self._totals.copy()

    def clear(self) -> None:
        """Reset every count to zero."""
        for slot in range(len(self._counts)):
            self._counts[slot] = 0
        for kind in range(self._kinds):
            self._totals[kind] = 0

        self._set_current(self._bucket_index())

    def _bucket_index(self) -> int:
        return math.floor(self._clock() / self._bucket_width)

    def _expire(self) -> None:
        index = self._bucket_index()
        # A clock that goes back leaves the counts as they are rather than
        # reviving buckets that were already reused.
        if index <= self._current:
            return

        if index - self._current >= self._bucket_count:
            self.clear()
            return

        for bucket in range(self._current + 1, index + 1):
            start = (bucket % self._bucket_count) * self._kinds
            for kind in range(self._kinds):
                self._totals[kind] -= self._counts[start + kind]
                self._counts[start + kind] = 0

        self._set_current(index)

    def _set_current(self, index: int) -> None:
        self._current = index
        # Until this time add() counts into the current bucket without expiring.
        self._current_ends = (index + 1) * self._bucket_width
