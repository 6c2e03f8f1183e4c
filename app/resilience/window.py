"""Time-based rolling counters shared by the circuit breaker and the retry budget."""

from __future__ import annotations

import math

from app.resilience.clock import Clock

__all__ = ["RollingCounter"]


class RollingCounter:
    """Counts of several kinds of event over the last `window` seconds.

    Time is cut into buckets `window / buckets` seconds wide, and an event
    counts while its bucket is one of the last `buckets`. So an event stays
    counted for more than `window * (buckets - 1) / buckets` and at most
    `window` seconds, and memory does not grow with traffic.

    Each kind keeps a running total since the counter was made or cleared, and
    the totals at the start of each of the last `buckets` buckets are kept in a
    ring. A count over the window is the running total less the one at the
    start of the oldest bucket, so add() raises one number, and a new bucket
    costs one copy of the totals.

    Kinds are the integers `0 .. kinds - 1`, which callers name with constants.
    Not thread-safe: use one instance from one thread or event loop.
    """

    __slots__ = (
        "_bucket_count",
        "_bucket_width",
        "_clock",
        "_current",
        "_current_ends",
        "_kinds",
        "_running",
        "_starts",
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
        self._running = [0] * kinds
        # The running totals at the start of bucket b are at index
        # b % buckets. Lists in the ring are replaced, never changed, so one
        # list may fill several slots.
        self._starts = [self._running.copy()] * buckets
        self._current = 0
        self._current_ends = 0.0
        self._set_current(self._bucket_index())

    def add(self, kind: int) -> None:
        """Count one event of `kind` at the current time."""
        if self._clock() >= self._current_ends:
            self._advance()
        self._running[kind] += 1

    def total(self, kind: int) -> int:
        """Return the number of events of `kind` in the window."""
        self._advance()
        return self._running[kind] - self._window_start()[kind]

    def totals(self) -> list[int]:
        """Return every kind's count in the window, as a new list indexed by kind."""
        self._advance()
        start = self._window_start()
        return [now - then for now, then in zip(self._running, start, strict=True)]

    def clear(self) -> None:
        """Reset every count to zero."""
        self._running = [0] * self._kinds
        self._starts = [self._running.copy()] * self._bucket_count
        self._set_current(self._bucket_index())

    def _bucket_index(self) -> int:
        now = self._clock()
        width = self._bucket_width
        index = math.floor(now / width)
        # The division may round across a boundary. Correct it so that bucket
        # i contains exactly the times from i * width up to (i + 1) * width, the
        # end that add() compares with.
        if now < index * width:
            index -= 1
        elif now >= (index + 1) * width:
            index += 1
        return index

    def _window_start(self) -> list[int]:
        """Return the running totals at the start of the window's oldest bucket."""
        return self._starts[(self._current + 1) % self._bucket_count]

    def _advance(self) -> None:
        """Move to the bucket of the current time, marking where each new one starts."""
        index = self._bucket_index()
        # A clock that goes back leaves the counts as they are rather than
        # counting events in buckets that were already left.
        if index <= self._current:
            return
        # No event happened since the current bucket, so every bucket up to
        # this one starts at the present totals.
        marks = self._running.copy()
        first = max(self._current + 1, index - self._bucket_count + 1)
        for bucket in range(first, index + 1):
            self._starts[bucket % self._bucket_count] = marks
        self._set_current(index)

    def _set_current(self, index: int) -> None:
        self._current = index
        # Until this time add() counts into the current bucket without advancing.
        self._current_ends = (index + 1) * self._bucket_width
