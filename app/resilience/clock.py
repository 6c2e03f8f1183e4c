"""Monotonic time sources: the process clock and a manual clock for tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeAlias

__all__ = ["Clock", "ManualClock", "monotonic"]

Clock: TypeAlias = Callable[[], float]
"""Zero-argument callable that returns monotonic time in seconds."""

monotonic: Clock = time.monotonic


class ManualClock:
    """Clock that moves only when `advance()` is called, for deterministic tests."""

    __slots__ = ("_now",)

    # The default start is far from zero so that code which treats 0.0 as
    # "never happened" fails in tests instead of passing by accident.
    def __init__(self, start: float = 1000.0) -> None:
        self._now = start

    def __call__(self) -> float:
        return self._now

    @property
    def now(self) -> float:
        """Current time in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds`.

        Raises:
            ValueError: if `seconds` is negative or NaN, because a monotonic
                clock never goes back.
        """
        if not seconds >= 0:
            message = f"seconds must be >= 0, got {seconds!r}"
            raise ValueError(message)

        self._now += seconds
