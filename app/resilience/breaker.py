"""CircuitBreaker: stops calls to an upstream whose recent failure ratio is too high."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeAlias

from app.resilience.clock import Clock, monotonic
from app.resilience.window import RollingCounter

__all__ = ["BreakerSnapshot", "CircuitBreaker", "CircuitState", "StateChangeHook"]

# Kinds counted in the rolling window while the circuit is closed.
_SUCCESSES = 0
_FAILURES = 1


class CircuitState(enum.IntEnum):
    """State of a circuit, with values that are exported as a gauge."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


StateChangeHook: TypeAlias = Callable[[str, CircuitState, CircuitState], None]
"""Callback that receives the breaker name, the old state and the new state."""


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """Point-in-time view of a breaker for health pages."""

    state: CircuitState
    calls: int
    """Outcomes recorded in the rolling window."""
    failures: int
    """Failures among `calls`."""
    open_remaining: float
    """Seconds until a probe is allowed, which is 0.0 unless the state is OPEN."""


class CircuitBreaker:
    """Circuit breaker with a time-based sliding window and a fixed probe count.

    CLOSED admits every call and records outcomes in a rolling window of
    `window` seconds. When a failure leaves at least `minimum_calls` outcomes
    in the window and failures / outcomes >= `failure_ratio`, the circuit
    opens. OPEN rejects every call for `break_duration` seconds and then turns
    HALF_OPEN on the next `try_acquire()` or `state` read. HALF_OPEN hands out
    at most `half_open_probes` permits at a time. That many successes close
    the circuit with an empty window, and one failure opens it again.

    Outcomes that arrive from calls admitted in an earlier state follow these
    rules, so that they never corrupt the counters:

    - In CLOSED every outcome is recorded, including one from a probe that was
      still running when the other probes closed the circuit.
    - In OPEN every outcome is ignored, since no call was admitted in this
      state.
    - In HALF_OPEN an outcome counts only while a permit is outstanding. With
      no permit outstanding it is ignored, because it must come from a call
      admitted before the circuit opened.

    Each `try_acquire()` that returned True must be followed by exactly one
    `record_*` call. Not thread-safe: use one instance from one thread or
    event loop.
    """

    __slots__ = (
        "_break_duration",
        "_clock",
        "_count_success",
        "_failure_ratio",
        "_half_open_probes",
        "_minimum_calls",
        "_name",
        "_on_state_change",
        "_opened_at",
        "_probe_successes",
        "_probes_in_flight",
        "_state",
        "_window",
        "closed",
        "record_success",
    )

    def __init__(
        self,
        name: str,
        *,
        failure_ratio: float,
        minimum_calls: int,
        window: float,
        break_duration: float,
        half_open_probes: int,
        clock: Clock = monotonic,
        on_state_change: StateChangeHook | None = None,
    ) -> None:
        """Create a closed breaker.

        Args:
            on_state_change: called once per transition, after the state has
                changed. An exception from it propagates to the caller of the
                method that caused the transition.

        Raises:
            ValueError: if an argument is outside its accepted range.
        """
        _check_arguments(
            failure_ratio=failure_ratio,
            minimum_calls=minimum_calls,
            window=window,
            break_duration=break_duration,
            half_open_probes=half_open_probes,
        )

        self._name = name
        self._failure_ratio = failure_ratio
        self._minimum_calls = minimum_calls
        self._break_duration = break_duration
        self._half_open_probes = half_open_probes
        self._clock = clock
        self._on_state_change = on_state_change
        self._window = RollingCounter(2, window=window, clock=clock)
        self._state = CircuitState.CLOSED
        # True exactly while the state is CLOSED, for callers that check it on
        # every call: reading an attribute costs less than calling try_acquire().
        self.closed = True
        # Records a call that succeeded. While CLOSED it is a functools.partial
        # of the window's add(), so a success runs no breaker method first.
        self._count_success = partial(self._window.add, _SUCCESSES)
        self.record_success: Callable[[], None] = self._count_success
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0

    @property
    def name(self) -> str:
        """Name passed to `on_state_change`, usually the upstream service."""
        return self._name

    @property
    def state(self) -> CircuitState:
        """Current state, after any pending OPEN to HALF_OPEN transition."""
        if self._state is CircuitState.OPEN:
            self._half_open_if_due()
        return self._state

    def try_acquire(self) -> bool:
        """Return whether a call may go ahead, taking a probe permit in HALF_OPEN."""
        if self._state is CircuitState.CLOSED:
            return True
        if self._state is CircuitState.OPEN and not self._half_open_if_due():
            return False

        if self._probes_in_flight >= self._half_open_probes:
            return False
        self._probes_in_flight += 1
        return True

    def _record_probe_success(self) -> None:
        """Record a call that succeeded while the state is not CLOSED."""
        if not self._release_probe():
            return

        self._probe_successes += 1
        if self._probe_successes >= self._half_open_probes:
            self._close()

    def record_failure(self) -> None:
        """Record a call that failed, opening the circuit when the ratio is reached."""
        if self._state is CircuitState.CLOSED:
            self._window.add(_FAILURES)
            if self._failure_ratio_reached():
                self._open()
            return

        if self._release_probe():
            self._open()

    def record_ignored(self) -> None:
        """Record a call whose outcome carries no signal about upstream health.

        Examples are a cancelled call or a 4xx response. In HALF_OPEN the probe
        permit is given back, and in other states nothing is recorded.
        """
        self._release_probe()

    def open_remaining(self) -> float:
        """Return the seconds until a probe is allowed, 0.0 unless OPEN."""
        if self.state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._break_duration - self._clock())

    def snapshot(self) -> BreakerSnapshot:
        """Return the state and window counts for health pages."""
        state = self.state
        successes = self._window.total(_SUCCESSES)
        failures = self._window.total(_FAILURES)
        return BreakerSnapshot(
            state=state,
            calls=successes + failures,
            failures=failures,
            open_remaining=self.open_remaining(),
        )

    def _failure_ratio_reached(self) -> bool:
        failures = self._window.total(_FAILURES)
        calls = failures + self._window.total(_SUCCESSES)
        # Division rather than failure_ratio * calls, because 0.28 * 25 is
        # 7.000000000000001 in binary floating point while 7 / 25 == 0.28.
        return calls >= self._minimum_calls and failures / calls >= self._failure_ratio

    def _release_probe(self) -> bool:
        """Give back a HALF_OPEN probe permit and return whether one was outstanding."""
        if self._state is not CircuitState.HALF_OPEN or self._probes_in_flight == 0:
            return False
        # NOTE: outcomes carry no token, so a call admitted while CLOSED that
        # is still running when probes are out counts as one of the probes.
        # A break_duration longer than the call timeout rules this out.
        self._probes_in_flight -= 1
        return True

    def _half_open_if_due(self) -> bool:
        if self._clock() - self._opened_at < self._break_duration:
            return False
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._transition(CircuitState.HALF_OPEN)
        return True

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._transition(CircuitState.OPEN)

    def _close(self) -> None:
        self._window.clear()
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._transition(CircuitState.CLOSED)

    def _transition(self, new: CircuitState) -> None:
        old = self._state
        self._state = new
        self.closed = new is CircuitState.CLOSED
        self.record_success = (
            self._count_success if self.closed else self._record_probe_success
        )
        if self._on_state_change is not None:
            self._on_state_change(self._name, old, new)


def _check_arguments(
    *,
    failure_ratio: float,
    minimum_calls: int,
    window: float,
    break_duration: float,
    half_open_probes: int,
) -> None:
    # Comparisons are written so that NaN fails them.
    if not 0 < failure_ratio <= 1:
        message = f"failure_ratio must be > 0 and <= 1, got {failure_ratio!r}"
        raise ValueError(message)
    if minimum_calls < 1:
        message = f"minimum_calls must be >= 1, got {minimum_calls!r}"
        raise ValueError(message)
    if not (window > 0 and math.isfinite(window)):
        message = f"window must be a finite number of seconds > 0, got {window!r}"
        raise ValueError(message)
    if not (break_duration > 0 and math.isfinite(break_duration)):
        message = (
            "break_duration must be a finite number of seconds > 0, "
            f"got {break_duration!r}"
        )
        raise ValueError(message)
    if half_open_probes < 1:
        message = f"half_open_probes must be >= 1, got {half_open_probes!r}"
        raise ValueError(message)
