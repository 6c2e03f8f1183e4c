"""Closed-loop load inside the measured process, bounded in time and calls."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["RunResult", "closed_loop", "percentile"]

# Time a run may take past its duration, for calls still in flight.
_GRACE_SECONDS = 30.0


@dataclass(slots=True)
class RunResult:
    """Outcome of one closed-loop run."""

    calls: int
    errors: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    """Seconds per call, when the run recorded them."""
    first_error: str | None = None

    @property
    def rps(self) -> float:
        """Completed calls per second, failed ones included."""
        return self.calls / self.seconds if self.seconds > 0 else 0.0


async def closed_loop(
    call: Callable[[], Awaitable[object]],
    *,
    concurrency: int,
    duration: float,
    max_calls: int,
    record_latency: bool = False,
) -> RunResult:
    """Run ``concurrency`` workers that each await ``call()`` back to back.

    Workers stop starting calls after ``duration`` seconds or ``max_calls``
    calls, whichever comes first, and the run ends when the last call returns.
    An exception from ``call`` counts as an error and the run goes on.
    """
    started = time.perf_counter()
    stop_at = started + duration
    issued = 0
    errors = 0
    first_error: str | None = None
    latencies: list[float] = []

    async def worker() -> None:
        nonlocal issued, errors, first_error
        while issued < max_calls and time.perf_counter() < stop_at:
            issued += 1
            call_started = time.perf_counter()
            try:
                await call()
            except Exception as exc:
                errors += 1
                if first_error is None:
                    first_error = f"{type(exc).__name__}: {exc}"
            if record_latency:
                latencies.append(time.perf_counter() - call_started)

    async with asyncio.timeout(duration + _GRACE_SECONDS):
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return RunResult(issued, errors, elapsed, latencies, first_error)


def percentile(values: list[float], fraction: float) -> float:
    """Return the ``fraction`` quantile of ``values``, interpolated linearly."""
    if not values:
        message = "percentile of an empty list"
        raise ValueError(message)
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)
