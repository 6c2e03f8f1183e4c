"""Rolling call statistics of one proxy, for the gateway's status page."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from app.resilience.clock import Clock, monotonic
from app.resilience.window import RollingCounter

__all__ = [
    "LATENCY_BOUNDS_MS",
    "CallStats",
    "CallStatsSnapshot",
    "estimate_quantile",
]

# Upper bounds of the latency bins in milliseconds: 0.1 ms times 2 ** (i / 4),
# up to about 105 s, so that each bin is about 19 % wider than the one before.
# One more bin counts the calls above the last bound.
LATENCY_BOUNDS_MS = tuple(0.1 * 2 ** (i / 4) for i in range(81))
_BINS = len(LATENCY_BOUNDS_MS) + 1


@dataclass(frozen=True, slots=True)
class CallStatsSnapshot:
    """Figures of one proxy's logical calls over the recent window."""

    window: float
    """Seconds the figures cover, less while the proxy is younger than that."""
    calls: int
    errors: int
    calls_per_second: float
    error_ratio: float | None
    """``errors / calls``, or None without calls."""
    p99_ms: float | None
    """Estimated 99th percentile of call duration, or None without calls."""
    in_flight: int


class CallStats(RollingCounter):
    """Calls, errors and a latency histogram over the last ``window`` seconds.

    It is a RollingCounter of one-second buckets, and each call counts as one
    of 164 kinds: its latency bin, offset by the bin count when it failed. So
    recording a call costs one bisect and one counter increment, and memory
    stays at ``window`` buckets of 164 counts, whatever the traffic. A call
    stays counted for between ``window - 1`` and ``window`` seconds.

    ``in_flight`` is a plain counter that the call engine raises when a call
    starts and lowers when it ends. Not thread-safe: use one instance from one
    event loop.
    """

    __slots__ = ("_started", "_window", "in_flight")

    def __init__(self, *, window: int = 60, clock: Clock = monotonic) -> None:
        if window < 1:
            message = f"window must be 1 or more seconds, got {window!r}"
            raise ValueError(message)
        super().__init__(2 * _BINS, window=float(window), clock=clock, buckets=window)
        self._window = window
        self._started = clock()
        self.in_flight = 0

    def record(self, duration_ms: float, failed: bool) -> None:
        """Count one finished logical call and its duration in milliseconds."""
        kind = bisect_left(LATENCY_BOUNDS_MS, duration_ms)
        if failed:
            kind += _BINS
        # add(kind), written out: one Python call less on every call.
        if self._clock() >= self._current_ends:
            self._advance()
        self._running[kind] += 1

    def snapshot(self) -> CallStatsSnapshot:
        """Return the figures of the window as it is now."""
        totals = self.totals()
        successes = totals[:_BINS]
        failures = totals[_BINS:]
        errors = sum(failures)
        calls = sum(successes) + errors
        # A proxy younger than the window has had less time to make calls. The
        # span is one second at least, so that a first call shows no huge rate.
        age = self._clock() - self._started
        span = min(float(self._window), max(1.0, age))
        pairs = zip(successes, failures, strict=True)
        latencies = [ok + failed for ok, failed in pairs]
        return CallStatsSnapshot(
            window=span,
            calls=calls,
            errors=errors,
            calls_per_second=calls / span,
            error_ratio=errors / calls if calls else None,
            p99_ms=estimate_quantile(latencies, 0.99),
            in_flight=self.in_flight,
        )


def estimate_quantile(counts: list[int], quantile: float) -> float | None:
    """Estimate a quantile in milliseconds from counts per latency bin.

    Like Prometheus's ``histogram_quantile``, the estimate interpolates
    linearly within the bin that contains the quantile, so it is off by at most
    that bin's width. A quantile in the last, unbounded bin returns the
    highest bound. Returns None when every count is 0.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = quantile * total
    cumulative = 0
    for index, count in enumerate(counts):
        if count and cumulative + count >= rank:
            if index >= len(LATENCY_BOUNDS_MS):
                return LATENCY_BOUNDS_MS[-1]
            lower = LATENCY_BOUNDS_MS[index - 1] if index else 0.0
            upper = LATENCY_BOUNDS_MS[index]
            return lower + (upper - lower) * (rank - cumulative) / count
        cumulative += count
    return LATENCY_BOUNDS_MS[-1]  # pragma: no cover - rank <= total ends the loop
