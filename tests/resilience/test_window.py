"""RollingCounter: event counts over a ring of time buckets."""

from __future__ import annotations

import math

import pytest

from app.resilience.clock import ManualClock
from app.resilience.window import RollingCounter

FIRST = 0
SECOND = 1


@pytest.fixture
def clock() -> ManualClock:
    """Provide a clock that starts on a bucket boundary."""
    return ManualClock()


@pytest.fixture
def counter(clock: ManualClock) -> RollingCounter:
    """Provide a two-kind counter over 10 seconds in buckets of 1 second."""
    return RollingCounter(2, window=10.0, clock=clock)


class TestCounting:
    """Counts within one window."""

    def test_starts_empty(self, counter: RollingCounter) -> None:
        """A new counter has no events of any kind."""
        assert counter.total(FIRST) == 0
        assert counter.total(SECOND) == 0

    def test_kinds_are_separate(self, counter: RollingCounter) -> None:
        """Events of one kind do not change the total of another."""
        counter.add(FIRST)
        counter.add(FIRST)
        counter.add(SECOND)

        assert counter.total(FIRST) == 2
        assert counter.total(SECOND) == 1

    def test_spans_buckets(self, clock: ManualClock, counter: RollingCounter) -> None:
        """Events in different buckets of the same window add up."""
        for _ in range(5):
            counter.add(FIRST)
            clock.advance(1.0)

        assert counter.total(FIRST) == 5

    def test_totals_lists_every_kind(
        self, clock: ManualClock, counter: RollingCounter
    ) -> None:
        """totals() returns each kind's count, after expiring old buckets."""
        counter.add(FIRST)
        clock.advance(5.0)
        counter.add(SECOND)
        counter.add(SECOND)
        both = counter.totals()
        clock.advance(5.0)
        after_first_expired = counter.totals()

        assert both == [1, 2]
        assert after_first_expired == [0, 2]

    def test_totals_is_a_copy(self, counter: RollingCounter) -> None:
        """Changing the returned list leaves the counter as it was."""
        counter.totals()[FIRST] = 99

        assert counter.total(FIRST) == 0

    def test_clear(self, counter: RollingCounter) -> None:
        """clear() resets every total to zero."""
        counter.add(FIRST)
        counter.add(SECOND)

        counter.clear()

        assert counter.total(FIRST) == 0
        assert counter.total(SECOND) == 0


class TestExpiry:
    """Events leave the window a bucket at a time."""

    def test_kept_until_window_ends(
        self, clock: ManualClock, counter: RollingCounter
    ) -> None:
        """An event is still counted just before its bucket leaves the window."""
        counter.add(FIRST)

        clock.advance(9.5)

        assert counter.total(FIRST) == 1

    def test_dropped_after_window(
        self, clock: ManualClock, counter: RollingCounter
    ) -> None:
        """An event stops counting once `window` seconds have passed."""
        counter.add(FIRST)

        clock.advance(10.0)

        assert counter.total(FIRST) == 0

    def test_expires_by_bucket(
        self, clock: ManualClock, counter: RollingCounter
    ) -> None:
        """An event late in a bucket expires with the whole bucket."""
        clock.advance(0.5)
        counter.add(FIRST)

        clock.advance(9.5)

        assert counter.total(FIRST) == 0

    def test_only_old_buckets_expire(
        self, clock: ManualClock, counter: RollingCounter
    ) -> None:
        """Newer events stay when older ones age out."""
        counter.add(FIRST)
        clock.advance(5.0)
        counter.add(FIRST)
        counter.add(SECOND)

        clock.advance(5.0)

        assert counter.total(FIRST) == 1
        assert counter.total(SECOND) == 1

    def test_long_idle_empties(
        self, clock: ManualClock, counter: RollingCounter
    ) -> None:
        """After many windows without events every total is zero."""
        counter.add(FIRST)
        counter.add(SECOND)

        clock.advance(1000.0)

        assert counter.total(FIRST) == 0
        assert counter.total(SECOND) == 0

    def test_reused_bucket_starts_at_zero(
        self, clock: ManualClock, counter: RollingCounter
    ) -> None:
        """A ring slot used again one window later holds only new events."""
        counter.add(FIRST)
        counter.add(FIRST)
        clock.advance(10.0)

        counter.add(FIRST)

        assert counter.total(FIRST) == 1

    def test_steady_traffic(self, clock: ManualClock, counter: RollingCounter) -> None:
        """With one event every 0.25 s the window contains 9 to 10 seconds of them."""
        for _ in range(400):
            counter.add(FIRST)
            clock.advance(0.25)

        assert counter.total(FIRST) >= 36
        assert counter.total(FIRST) <= 40

    def test_clock_going_back(self) -> None:
        """A reading earlier than the last one counts into the newest bucket."""
        readings = [1005.0]
        counter = RollingCounter(1, window=10.0, clock=lambda: readings[0])
        counter.add(FIRST)

        readings[0] = 1000.0
        counter.add(FIRST)
        readings[0] = 1014.5
        before_expiry = counter.total(FIRST)
        readings[0] = 1015.0
        expired = counter.total(FIRST)

        assert before_expiry == 2
        assert expired == 0


class TestBoundaries:
    """A time on a bucket boundary falls in the same bucket for every method."""

    def test_time_rounded_by_division(self) -> None:
        """add() and total() agree where t / width rounds up to the next bucket."""
        clock = ManualClock(start=0.0)
        counter = RollingCounter(1, window=0.3, clock=clock, buckets=2)
        width = 0.15
        # 19 * width is 2.85, and this time is just below it, but divided by
        # width it rounds to exactly 19.0.
        clock.advance(math.nextafter(19 * width, 0.0))
        assert clock.now / width == 19.0
        counter.total(FIRST)
        counter.add(FIRST)

        clock.advance(20 * width - clock.now - 1e-9)
        before_expiry = counter.total(FIRST)
        clock.advance(1e-9)
        expired = counter.total(FIRST)

        assert before_expiry == 1
        assert expired == 0


class TestArguments:
    """Constructor validation."""

    @pytest.mark.parametrize(
        ("kinds", "window", "buckets", "argument"),
        [
            (0, 10.0, 10, "kinds"),
            (1, 10.0, 0, "buckets"),
            (1, 0.0, 10, "window"),
            (1, -1.0, 10, "window"),
            (1, math.inf, 10, "window"),
            (1, math.nan, 10, "window"),
        ],
    )
    def test_rejects_invalid(
        self, kinds: int, window: float, buckets: int, argument: str
    ) -> None:
        """An argument outside its range raises ValueError naming it."""
        with pytest.raises(ValueError, match=argument):
            RollingCounter(kinds, window=window, clock=ManualClock(), buckets=buckets)
