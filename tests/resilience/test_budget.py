"""RetryBudget: retries as a share of recent calls, with a reserve."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.resilience.budget import RetryBudget
from app.resilience.clock import ManualClock

WINDOW = 10.0


@pytest.fixture
def clock() -> ManualClock:
    """Provide a clock that moves only when a test advances it."""
    return ManualClock()


def make_budget(
    clock: ManualClock, *, ratio: float = 0.2, min_retries: int = 3
) -> RetryBudget:
    """Build a budget over a 10-second window."""
    return RetryBudget(ratio=ratio, min_retries=min_retries, window=WINDOW, clock=clock)


def record_calls(budget: RetryBudget, count: int) -> None:
    """Count `count` logical calls."""
    for _ in range(count):
        budget.record_call()


def spend_all(budget: RetryBudget, limit: int = 10_000) -> int:
    """Spend retries until the budget rejects one, and return how many it allowed."""
    for spent in range(limit):
        if not budget.try_spend():
            return spent
    return limit


def run_failing_calls(budget: RetryBudget, calls: int, retries_per_call: int) -> int:
    """Run calls that always fail, each retrying while allowed; return the retries."""
    spent = 0
    for _ in range(calls):
        budget.record_call()
        for _ in range(retries_per_call):
            if not budget.try_spend():
                break
            spent += 1
    return spent


class TestReserve:
    """min_retries at low traffic."""

    def test_without_calls(self, clock: ManualClock) -> None:
        """With no calls the reserve alone allows min_retries retries."""
        budget = make_budget(clock)

        assert spend_all(budget) == 3

    def test_low_traffic(self, clock: ManualClock) -> None:
        """Five calls earn one retry at 0.2, so the reserve of three applies."""
        budget = make_budget(clock)
        record_calls(budget, 5)

        assert spend_all(budget) == 3

    def test_zero_ratio_keeps_reserve(self, clock: ManualClock) -> None:
        """Ratio 0 allows only the reserve, however many calls there are."""
        budget = make_budget(clock, ratio=0.0, min_retries=2)
        record_calls(budget, 1000)

        assert spend_all(budget) == 2

    def test_zero_ratio_and_reserve(self, clock: ManualClock) -> None:
        """Ratio 0 with no reserve turns retries off."""
        budget = make_budget(clock, ratio=0.0, min_retries=0)
        record_calls(budget, 1000)

        assert not budget.try_spend()
        assert budget.available() == 0.0


class TestRatio:
    """Retries earned by calls."""

    def test_ratio_of_calls(self, clock: ManualClock) -> None:
        """Fifty calls at 0.2 allow ten retries."""
        budget = make_budget(clock)
        record_calls(budget, 50)

        assert spend_all(budget) == 10

    def test_max_not_sum(self, clock: ManualClock) -> None:
        """The reserve and the earned retries do not add up."""
        budget = make_budget(clock, ratio=0.5, min_retries=3)
        record_calls(budget, 10)

        assert spend_all(budget) == 5

    def test_decimal_ratio_is_exact(self, clock: ManualClock) -> None:
        """Twenty-five calls at 0.28 allow seven retries despite float rounding."""
        budget = make_budget(clock, ratio=0.28, min_retries=0)
        record_calls(budget, 25)

        assert spend_all(budget) == 7

    def test_fraction_of_retry(self, clock: ManualClock) -> None:
        """One call at 0.2 earns part of a retry, which allows one."""
        budget = make_budget(clock, ratio=0.2, min_retries=0)
        budget.record_call()

        assert budget.available() == pytest.approx(0.2)
        assert budget.try_spend()
        assert not budget.try_spend()

    def test_rejection_records_nothing(self, clock: ManualClock) -> None:
        """A rejected retry leaves the budget as it was."""
        budget = make_budget(clock, ratio=0.5, min_retries=0)
        record_calls(budget, 4)
        spend_all(budget)

        budget.record_call()
        budget.record_call()

        assert spend_all(budget) == 1

    def test_available(self, clock: ManualClock) -> None:
        """available() reports the retries left and falls as they are spent."""
        budget = make_budget(clock, ratio=0.5, min_retries=0)
        record_calls(budget, 4)
        before = budget.available()

        assert budget.try_spend()

        assert before == 2.0
        assert budget.available() == 1.0


class TestLoadBound:
    """Retries cannot multiply the load on a failing upstream."""

    def test_failing_calls_bounded(self, clock: ManualClock) -> None:
        """500 failing calls wanting 3 retries each get at most 100 retries."""
        budget = make_budget(clock, ratio=0.2, min_retries=3)

        retries = run_failing_calls(budget, calls=500, retries_per_call=3)

        assert retries <= 100
        assert 500 + retries <= 1.2 * 500

    def test_reserve_bounds_small_bursts(self, clock: ManualClock) -> None:
        """Ten failing calls get only the reserve of three retries."""
        budget = make_budget(clock, ratio=0.2, min_retries=3)

        assert run_failing_calls(budget, calls=10, retries_per_call=3) == 3

    @given(
        percent=st.integers(min_value=0, max_value=300),
        min_retries=st.integers(min_value=0, max_value=20),
        calls=st.integers(min_value=0, max_value=400),
        retries_per_call=st.integers(min_value=0, max_value=5),
    )
    def test_bound_holds_for_any_settings(
        self, percent: int, min_retries: int, calls: int, retries_per_call: int
    ) -> None:
        """Within one window retries never exceed ceil(max(min_retries, ratio * N))."""
        ratio = percent / 100
        budget = RetryBudget(
            ratio=ratio, min_retries=min_retries, window=WINDOW, clock=ManualClock()
        )

        retries = run_failing_calls(budget, calls, retries_per_call)

        bound = math.ceil(max(Fraction(min_retries), Fraction(percent, 100) * calls))
        assert retries <= bound


class TestWindow:
    """Calls and retries leave the budget as they age."""

    def test_calls_age_out(self, clock: ManualClock) -> None:
        """Calls older than the window no longer earn retries."""
        budget = make_budget(clock, ratio=0.5, min_retries=0)
        record_calls(budget, 10)

        clock.advance(WINDOW)

        assert budget.available() == 0.0
        assert not budget.try_spend()

    def test_retries_age_out(self, clock: ManualClock) -> None:
        """A spent reserve is available again one window later."""
        budget = make_budget(clock, ratio=0.0, min_retries=2)
        spend_all(budget)

        clock.advance(WINDOW)

        assert spend_all(budget) == 2

    def test_recent_calls_stay(self, clock: ManualClock) -> None:
        """Only the calls older than the window age out."""
        budget = make_budget(clock, ratio=0.5, min_retries=0)
        record_calls(budget, 10)
        clock.advance(5.0)
        record_calls(budget, 4)

        clock.advance(5.0)

        assert spend_all(budget) == 2

    def test_burst_after_quiet_period(self, clock: ManualClock) -> None:
        """Retries spent in an old window do not count against a new burst."""
        budget = make_budget(clock, ratio=0.2, min_retries=3)
        first = run_failing_calls(budget, calls=100, retries_per_call=3)

        clock.advance(WINDOW)
        second = run_failing_calls(budget, calls=100, retries_per_call=3)

        assert first == 20
        assert second == 20


class TestArguments:
    """Constructor validation."""

    @pytest.mark.parametrize(
        ("argument", "value"),
        [
            ("ratio", -0.1),
            ("ratio", 10.5),
            ("ratio", math.nan),
            ("min_retries", -1),
            ("window", 0.0),
            ("window", -1.0),
            ("window", math.inf),
            ("window", math.nan),
        ],
    )
    def test_rejects_invalid(self, argument: str, value: float) -> None:
        """An argument outside its range raises ValueError naming it."""
        options: dict[str, float] = {"ratio": 0.2, "min_retries": 3, "window": WINDOW}
        options[argument] = value

        with pytest.raises(ValueError, match=rf"^{argument} must be"):
            RetryBudget(**options)  # type: ignore[arg-type]

    @pytest.mark.parametrize("ratio", [0.0, 10.0])
    def test_accepts_ratio_limits(self, clock: ManualClock, ratio: float) -> None:
        """Ratios 0 and 10 are accepted."""
        budget = make_budget(clock, ratio=ratio, min_retries=0)
        record_calls(budget, 1)

        assert spend_all(budget) == int(ratio)
