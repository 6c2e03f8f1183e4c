"""RetryBudget: caps retries at a share of recent calls so they cannot multiply load."""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from functools import partial

from app.resilience.clock import Clock, monotonic
from app.resilience.window import RollingCounter

__all__ = ["RetryBudget"]

# Kinds counted in the rolling window.
_CALLS = 0
_RETRIES = 1

# The ratio is applied as a fraction so that the check is exact integer
# arithmetic. A denominator of up to one million keeps 0.2 at exactly 1/5.
_MAX_RATIO_DENOMINATOR = 1_000_000


class RetryBudget:
    """Retry budget that allows `max(min_retries, ratio * calls)` retries per window.

    Calls and retries are counted over the last `window` seconds. A retry is
    allowed while the retries in the window are fewer than the allowance, so
    with N calls in one window at most `ceil(max(min_retries, ratio * N))`
    retries are spent, however many each call requests. `min_retries` is a
    reserve that lets low-traffic clients retry at all. The allowance is the
    larger of the two terms rather than their sum, so that at high traffic the
    upstream sees at most `1 + ratio` times the requests it would see with
    retries off.

    Not thread-safe: use one instance from one thread or event loop.
    """

    __slots__ = (
        "_min_retries",
        "_ratio_denominator",
        "_ratio_numerator",
        "_window",
        "record_call",
    )

    def __init__(
        self,
        *,
        ratio: float,
        min_retries: int,
        window: float,
        clock: Clock = monotonic,
    ) -> None:
        """Create an empty budget.

        Raises:
            ValueError: if an argument is outside its accepted range.
        """
        # Comparisons are written so that NaN fails them.
        if not 0 <= ratio <= 10:
            message = f"ratio must be >= 0 and <= 10, got {ratio!r}"
            raise ValueError(message)
        if min_retries < 0:
            message = f"min_retries must be >= 0, got {min_retries!r}"
            raise ValueError(message)
        if not (window > 0 and math.isfinite(window)):
            message = f"window must be a finite number of seconds > 0, got {window!r}"
            raise ValueError(message)

        fraction = Fraction(ratio).limit_denominator(_MAX_RATIO_DENOMINATOR)
        self._ratio_numerator = fraction.numerator
        self._ratio_denominator = fraction.denominator
        self._min_retries = min_retries
        self._window = RollingCounter(2, window=window, clock=clock)
        # Counts one logical call, made when its first attempt starts. A
        # partial, which is C, rather than a method that calls add(): it runs
        # on every call.
        self.record_call: Callable[[], None] = partial(self._window.add, _CALLS)

    def try_spend(self) -> bool:
        """Return whether a retry may happen, counting it when it may."""
        retries = self._window.total(_RETRIES)
        if retries >= self._min_retries:
            calls = self._window.total(_CALLS)
            # retries < ratio * calls, multiplied out by the denominator.
            allowance = self._ratio_numerator * calls
            if retries * self._ratio_denominator >= allowance:
                return False

        self._window.add(_RETRIES)
        return True

    def available(self) -> float:
        """Return how many more retries the window allows now, possibly fractional."""
        calls = self._window.total(_CALLS)
        retries = self._window.total(_RETRIES)
        earned = self._ratio_numerator * calls / self._ratio_denominator
        return max(0.0, max(self._min_retries, earned) - retries)
