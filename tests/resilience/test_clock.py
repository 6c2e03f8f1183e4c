"""ManualClock and the default monotonic clock."""

from __future__ import annotations

import math
import time

import pytest

from app.resilience.clock import ManualClock, monotonic


class TestManualClock:
    """A clock that moves only when a test moves it."""

    def test_default_start(self) -> None:
        """A new clock reads 1000.0 seconds."""
        clock = ManualClock()

        assert clock() == 1000.0
        assert clock.now == 1000.0

    def test_custom_start(self) -> None:
        """The start argument sets the first reading."""
        clock = ManualClock(start=5.5)

        assert clock() == 5.5

    def test_stands_still(self) -> None:
        """Repeated readings return the same time."""
        clock = ManualClock()

        assert clock() == clock()

    def test_advance_moves_forward(self) -> None:
        """advance() adds its argument to the reading."""
        clock = ManualClock()

        clock.advance(2.5)
        clock.advance(0.5)

        assert clock() == 1003.0
        assert clock.now == 1003.0

    def test_advance_by_zero(self) -> None:
        """Advancing by zero is allowed and changes nothing."""
        clock = ManualClock()

        clock.advance(0.0)

        assert clock() == 1000.0

    @pytest.mark.parametrize("seconds", [-0.001, -10.0, math.nan])
    def test_advance_rejects_backwards(self, seconds: float) -> None:
        """A negative or NaN step raises ValueError and leaves the time alone."""
        clock = ManualClock()

        with pytest.raises(ValueError, match="seconds must be >= 0"):
            clock.advance(seconds)

        assert clock() == 1000.0


class TestMonotonic:
    """The default clock of the resilience policies."""

    def test_is_time_monotonic(self) -> None:
        """The default clock is the process's monotonic clock."""
        assert monotonic is time.monotonic
