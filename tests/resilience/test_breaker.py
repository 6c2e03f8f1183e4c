"""CircuitBreaker: state transitions driven by a manual clock."""

from __future__ import annotations

import asyncio
import dataclasses
import math

import pytest

from app.resilience.breaker import BreakerSnapshot, CircuitBreaker, CircuitState
from app.resilience.clock import ManualClock

NAME = "user-service"
BREAK = 30.0

Change = tuple[str, CircuitState, CircuitState]


class StateLog:
    """Recorder for on_state_change calls."""

    def __init__(self) -> None:
        self.changes: list[Change] = []

    def __call__(self, name: str, old: CircuitState, new: CircuitState) -> None:
        self.changes.append((name, old, new))


@pytest.fixture
def clock() -> ManualClock:
    """Provide a clock that moves only when a test advances it."""
    return ManualClock()


@pytest.fixture
def log() -> StateLog:
    """Provide an empty transition recorder."""
    return StateLog()


def make_breaker(
    clock: ManualClock,
    *,
    failure_ratio: float = 0.5,
    minimum_calls: int = 4,
    window: float = 10.0,
    half_open_probes: int = 2,
    log: StateLog | None = None,
) -> CircuitBreaker:
    """Build a breaker with test defaults and a 30-second break."""
    return CircuitBreaker(
        NAME,
        failure_ratio=failure_ratio,
        minimum_calls=minimum_calls,
        window=window,
        break_duration=BREAK,
        half_open_probes=half_open_probes,
        clock=clock,
        on_state_change=log,
    )


@pytest.fixture
def breaker(clock: ManualClock, log: StateLog) -> CircuitBreaker:
    """Provide a breaker that opens at 50 % of at least 4 calls."""
    return make_breaker(clock, log=log)


def succeed(breaker: CircuitBreaker, times: int = 1) -> None:
    """Run `times` admitted calls that succeed."""
    for _ in range(times):
        assert breaker.try_acquire()
        breaker.record_success()


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    """Run `times` admitted calls that fail."""
    for _ in range(times):
        assert breaker.try_acquire()
        breaker.record_failure()


def trip(breaker: CircuitBreaker) -> None:
    """Open a closed breaker with failures alone."""
    fail(breaker, 4)
    assert breaker.state is CircuitState.OPEN


def half_open(breaker: CircuitBreaker, clock: ManualClock) -> None:
    """Open the breaker and wait out the break."""
    trip(breaker)
    clock.advance(BREAK)
    assert breaker.state is CircuitState.HALF_OPEN


class TestState:
    """CircuitState values shared with the state gauge."""

    def test_gauge_values(self) -> None:
        """The states map to 0, 1 and 2."""
        assert int(CircuitState.CLOSED) == 0
        assert int(CircuitState.OPEN) == 1
        assert int(CircuitState.HALF_OPEN) == 2


class TestClosed:
    """Counting outcomes in the rolling window."""

    def test_starts_closed(self, breaker: CircuitBreaker) -> None:
        """A new breaker is closed and admits calls."""
        assert breaker.state is CircuitState.CLOSED
        assert breaker.try_acquire()

    def test_opens_when_ratio_reached(self, breaker: CircuitBreaker) -> None:
        """Two failures out of four calls reach a 0.5 ratio and open the circuit."""
        succeed(breaker, 2)
        fail(breaker, 2)

        assert breaker.state is CircuitState.OPEN

    def test_stays_closed_below_ratio(self, breaker: CircuitBreaker) -> None:
        """Two failures out of five calls stay under a 0.5 ratio."""
        succeed(breaker, 3)
        fail(breaker, 2)

        assert breaker.state is CircuitState.CLOSED

    def test_waits_for_minimum_calls(self, breaker: CircuitBreaker) -> None:
        """Failures below minimum_calls do not open, the one reaching it does."""
        fail(breaker, 3)
        below_minimum = breaker.state

        fail(breaker)

        assert below_minimum is CircuitState.CLOSED
        assert breaker.state is CircuitState.OPEN

    def test_success_never_opens(self, breaker: CircuitBreaker) -> None:
        """A success that completes minimum_calls does not open the circuit."""
        fail(breaker, 3)
        succeed(breaker)
        after_success = breaker.state

        fail(breaker)

        assert after_success is CircuitState.CLOSED
        assert breaker.state is CircuitState.OPEN

    def test_decimal_ratio_is_exact(self, clock: ManualClock) -> None:
        """Seven failures in 25 calls reach a 0.28 ratio despite float rounding."""
        breaker = make_breaker(clock, failure_ratio=0.28, minimum_calls=25)
        succeed(breaker, 18)
        fail(breaker, 6)
        before = breaker.state

        fail(breaker)

        assert before is CircuitState.CLOSED
        assert breaker.state is CircuitState.OPEN

    def test_ratio_one_needs_all_failures(self, clock: ManualClock) -> None:
        """With failure_ratio 1 one success in the window keeps the circuit closed."""
        breaker = make_breaker(clock, failure_ratio=1.0, minimum_calls=2)
        succeed(breaker)
        fail(breaker, 20)

        assert breaker.state is CircuitState.CLOSED

    def test_old_failures_age_out(
        self, clock: ManualClock, breaker: CircuitBreaker
    ) -> None:
        """Failures older than the window no longer count towards opening."""
        fail(breaker, 3)
        clock.advance(10.0)

        fail(breaker)

        assert breaker.state is CircuitState.CLOSED
        assert breaker.snapshot().failures == 1

    def test_recent_failures_add_up(
        self, clock: ManualClock, breaker: CircuitBreaker
    ) -> None:
        """Failures spread over less than the window add up to open the circuit."""
        fail(breaker, 3)
        clock.advance(8.0)

        fail(breaker)

        assert breaker.state is CircuitState.OPEN

    def test_ignored_records_nothing(self, breaker: CircuitBreaker) -> None:
        """record_ignored() leaves the window empty."""
        assert breaker.try_acquire()
        breaker.record_ignored()

        assert breaker.snapshot().calls == 0


class TestOpen:
    """Rejecting calls during the break."""

    def test_rejects_calls(self, breaker: CircuitBreaker) -> None:
        """An open circuit rejects every call."""
        trip(breaker)

        assert not breaker.try_acquire()
        assert not breaker.try_acquire()

    def test_open_remaining_counts_down(
        self, clock: ManualClock, breaker: CircuitBreaker
    ) -> None:
        """open_remaining() falls as the break passes."""
        trip(breaker)
        at_open = breaker.open_remaining()

        clock.advance(12.0)

        assert at_open == BREAK
        assert breaker.open_remaining() == 18.0

    def test_open_remaining_zero_when_closed(self, breaker: CircuitBreaker) -> None:
        """A closed circuit reports no remaining break."""
        assert breaker.open_remaining() == 0.0

    def test_rejects_until_break_ends(
        self, clock: ManualClock, breaker: CircuitBreaker
    ) -> None:
        """Calls are rejected until the whole break has passed."""
        trip(breaker)

        clock.advance(BREAK - 0.5)

        assert not breaker.try_acquire()
        assert breaker.state is CircuitState.OPEN

    def test_half_opens_on_acquire(
        self, clock: ManualClock, breaker: CircuitBreaker
    ) -> None:
        """The first try_acquire() after the break admits a probe."""
        trip(breaker)
        clock.advance(BREAK)

        admitted = breaker.try_acquire()

        assert admitted
        assert breaker.state is CircuitState.HALF_OPEN

    def test_half_opens_on_state_read(
        self, clock: ManualClock, breaker: CircuitBreaker
    ) -> None:
        """Reading the state after the break moves the circuit to HALF_OPEN."""
        trip(breaker)
        clock.advance(BREAK + 100.0)

        assert breaker.state is CircuitState.HALF_OPEN
        assert breaker.open_remaining() == 0.0


class TestHalfOpen:
    """Probing the upstream after the break."""

    def test_probe_limit(self, clock: ManualClock, breaker: CircuitBreaker) -> None:
        """Only half_open_probes calls are admitted at a time."""
        half_open(breaker, clock)

        admitted = [breaker.try_acquire() for _ in range(5)]

        assert admitted == [True, True, False, False, False]

    async def test_concurrent_probes(
        self, clock: ManualClock, breaker: CircuitBreaker
    ) -> None:
        """Of many concurrent calls only the permitted probes reach the upstream."""
        half_open(breaker, clock)
        upstream_calls = 0

        async def call() -> None:
            nonlocal upstream_calls
            if not breaker.try_acquire():
                return
            upstream_calls += 1
            await asyncio.sleep(0)
            breaker.record_success()

        await asyncio.gather(*(call() for _ in range(10)))

        assert upstream_calls == 2
        assert breaker.state is CircuitState.CLOSED

    def test_ignored_returns_permit(
        self, clock: ManualClock, breaker: CircuitBreaker
    ) -> None:
        """record_ignored() gives the probe permit back."""
        half_open(breaker, clock)
        assert breaker.try_acquire()
        assert breaker.try_acquire()

        breaker.record_ignored()

        assert breaker.try_acquire()
        assert breaker.state is CircuitState.HALF_OPEN

    def test_one_success_not_enough(
        self, clock: ManualClock, breaker: CircuitBreaker
    ) -> None:
        """Fewer successes than half_open_probes keep the circuit half-open."""
        half_open(breaker, clock)

        succeed(breaker)

        assert breaker.state is CircuitState.HALF_OPEN

    def test_closes_after_probes_succeed(
        self, clock: ManualClock, breaker: CircuitBreaker
    ) -> None:
        """half_open_probes successes close the circuit."""
        half_open(breaker, clock)

        succeed(breaker, 2)

        assert breaker.state is CircuitState.CLOSED
        assert breaker.try_acquire()

    def test_closes_with_empty_window(self, clock: ManualClock) -> None:
        """Failures from before the break do not count after closing."""
        breaker = make_breaker(clock, window=100.0)
        half_open(breaker, clock)
        succeed(breaker, 2)

        fail(breaker, 3)

        assert breaker.snapshot().calls == 3
        assert breaker.state is CircuitState.CLOSED

    def test_successes_counted_after_closing(self, clock: ManualClock) -> None:
        """Successes after the probes closed the circuit count in the window."""
        breaker = make_breaker(clock, window=100.0)
        half_open(breaker, clock)
        succeed(breaker, 2)

        succeed(breaker, 3)

        assert breaker.snapshot().calls == 3
        assert breaker.snapshot().failures == 0

    def test_reopens_on_probe_failure(
        self, clock: ManualClock, breaker: CircuitBreaker
    ) -> None:
        """A failed probe opens the circuit and restarts the break."""
        half_open(breaker, clock)

        fail(breaker)

        assert breaker.state is CircuitState.OPEN
        assert not breaker.try_acquire()
        assert breaker.open_remaining() == BREAK

    def test_failure_after_success_reopens(
        self, clock: ManualClock, breaker: CircuitBreaker
    ) -> None:
        """A failed probe reopens the circuit even after a successful one."""
        half_open(breaker, clock)
        succeed(breaker)

        fail(breaker)

        assert breaker.state is CircuitState.OPEN

    def test_probes_again_after_new_break(
        self, clock: ManualClock, breaker: CircuitBreaker
    ) -> None:
        """After a failed probe the next probe waits for a full new break."""
        half_open(breaker, clock)
        fail(breaker)

        clock.advance(BREAK - 0.5)
        early = breaker.try_acquire()
        clock.advance(0.5)

        assert not early
        assert breaker.try_acquire()

    def test_single_probe(self, clock: ManualClock) -> None:
        """With one probe a single success closes the circuit."""
        breaker = make_breaker(clock, half_open_probes=1)
        half_open(breaker, clock)
        assert breaker.try_acquire()
        rejected = not breaker.try_acquire()

        breaker.record_success()

        assert rejected
        assert breaker.state is CircuitState.CLOSED


class TestStaleOutcomes:
    """Outcomes of calls admitted in an earlier state."""

    def test_ignored_while_open(
        self, clock: ManualClock, breaker: CircuitBreaker
    ) -> None:
        """Slow calls admitted while closed change nothing once the circuit opened."""
        for _ in range(6):
            assert breaker.try_acquire()
        for _ in range(4):
            breaker.record_failure()
        clock.advance(5.0)

        breaker.record_failure()
        breaker.record_success()

        assert breaker.state is CircuitState.OPEN
        assert breaker.snapshot().failures == 4
        assert breaker.open_remaining() == BREAK - 5.0

    def test_ignored_without_permit(
        self, clock: ManualClock, breaker: CircuitBreaker
    ) -> None:
        """In HALF_OPEN an outcome with no permit outstanding is not a probe."""
        half_open(breaker, clock)

        breaker.record_success()
        breaker.record_success()
        breaker.record_failure()

        assert breaker.state is CircuitState.HALF_OPEN

    def test_stale_success_does_not_close(
        self, clock: ManualClock, breaker: CircuitBreaker
    ) -> None:
        """A success with no permit outstanding does not count towards closing."""
        half_open(breaker, clock)
        breaker.record_success()

        succeed(breaker)

        assert breaker.state is CircuitState.HALF_OPEN

    def test_probe_after_reopen_ignored(
        self, clock: ManualClock, breaker: CircuitBreaker
    ) -> None:
        """A probe that ends after another probe reopened the circuit is ignored."""
        half_open(breaker, clock)
        assert breaker.try_acquire()
        assert breaker.try_acquire()
        breaker.record_failure()
        clock.advance(1.0)

        breaker.record_success()

        assert breaker.state is CircuitState.OPEN
        assert breaker.open_remaining() == BREAK - 1.0

    def test_late_probe_recorded_when_closed(
        self, clock: ManualClock, breaker: CircuitBreaker
    ) -> None:
        """A probe still running when the circuit closes is recorded in the window."""
        half_open(breaker, clock)
        assert breaker.try_acquire()
        assert breaker.try_acquire()
        breaker.record_success()
        assert breaker.try_acquire()
        breaker.record_success()

        breaker.record_failure()

        assert breaker.state is CircuitState.CLOSED
        assert breaker.snapshot().failures == 1


class TestStateChanges:
    """on_state_change calls."""

    def test_each_transition_once(
        self, clock: ManualClock, breaker: CircuitBreaker, log: StateLog
    ) -> None:
        """A full cycle reports every transition exactly once, in order."""
        half_open(breaker, clock)
        fail(breaker)
        clock.advance(BREAK)
        succeed(breaker, 2)

        assert log.changes == [
            (NAME, CircuitState.CLOSED, CircuitState.OPEN),
            (NAME, CircuitState.OPEN, CircuitState.HALF_OPEN),
            (NAME, CircuitState.HALF_OPEN, CircuitState.OPEN),
            (NAME, CircuitState.OPEN, CircuitState.HALF_OPEN),
            (NAME, CircuitState.HALF_OPEN, CircuitState.CLOSED),
        ]

    def test_repeated_reads_report_once(
        self, clock: ManualClock, breaker: CircuitBreaker, log: StateLog
    ) -> None:
        """Several reads and acquires after the break report HALF_OPEN once."""
        trip(breaker)
        clock.advance(BREAK)

        for _ in range(3):
            assert breaker.state is CircuitState.HALF_OPEN
        breaker.try_acquire()
        breaker.open_remaining()
        breaker.snapshot()

        assert len(log.changes) == 2

    def test_no_report_without_transition(
        self, breaker: CircuitBreaker, log: StateLog
    ) -> None:
        """Outcomes that keep the state report nothing."""
        succeed(breaker, 2)
        fail(breaker)
        while_closed = len(log.changes)
        fail(breaker)

        breaker.record_failure()
        breaker.try_acquire()

        assert while_closed == 0
        assert len(log.changes) == 1

    def test_hook_sees_new_state(self, clock: ManualClock) -> None:
        """The hook runs after the breaker has changed state."""
        seen: list[CircuitState] = []
        watched = CircuitBreaker(
            NAME,
            failure_ratio=0.5,
            minimum_calls=1,
            window=10.0,
            break_duration=BREAK,
            half_open_probes=1,
            clock=clock,
            on_state_change=lambda name, old, new: seen.append(watched.state),
        )

        fail(watched)

        assert seen == [CircuitState.OPEN]

    def test_works_without_hook(self, clock: ManualClock) -> None:
        """A breaker without on_state_change still changes state."""
        breaker = make_breaker(clock)

        trip(breaker)

        assert breaker.state is CircuitState.OPEN


class TestSnapshot:
    """Values for health pages."""

    def test_counts_window(self, breaker: CircuitBreaker) -> None:
        """A closed breaker reports its window counts."""
        succeed(breaker, 3)
        fail(breaker)

        snapshot = breaker.snapshot()

        assert snapshot == BreakerSnapshot(
            state=CircuitState.CLOSED, calls=4, failures=1, open_remaining=0.0
        )

    def test_open(self, clock: ManualClock, breaker: CircuitBreaker) -> None:
        """An open breaker reports the remaining break."""
        trip(breaker)
        clock.advance(10.0)

        snapshot = breaker.snapshot()

        assert snapshot.state is CircuitState.OPEN
        assert snapshot.open_remaining == BREAK - 10.0

    def test_frozen(self, breaker: CircuitBreaker) -> None:
        """A snapshot cannot be changed."""
        snapshot = breaker.snapshot()

        with pytest.raises(dataclasses.FrozenInstanceError):
            snapshot.calls = 1  # type: ignore[misc]

    def test_name(self, breaker: CircuitBreaker) -> None:
        """The breaker keeps the name it was given."""
        assert breaker.name == NAME


class TestArguments:
    """Constructor validation."""

    @pytest.mark.parametrize(
        ("argument", "value"),
        [
            ("failure_ratio", 0.0),
            ("failure_ratio", -0.5),
            ("failure_ratio", 1.01),
            ("failure_ratio", math.nan),
            ("minimum_calls", 0),
            ("minimum_calls", -1),
            ("window", 0.0),
            ("window", -1.0),
            ("window", math.inf),
            ("window", math.nan),
            ("break_duration", 0.0),
            ("break_duration", -1.0),
            ("break_duration", math.inf),
            ("half_open_probes", 0),
        ],
    )
    def test_rejects_invalid(self, argument: str, value: float) -> None:
        """An argument outside its range raises ValueError naming it."""
        options: dict[str, float] = {
            "failure_ratio": 0.5,
            "minimum_calls": 4,
            "window": 10.0,
            "break_duration": BREAK,
            "half_open_probes": 2,
        }
        options[argument] = value

        with pytest.raises(ValueError, match=rf"^{argument} must be"):
            CircuitBreaker(NAME, **options)  # type: ignore[arg-type]

    def test_accepts_boundaries(self, clock: ManualClock) -> None:
        """The smallest and largest accepted values build a working breaker."""
        breaker = CircuitBreaker(
            NAME,
            failure_ratio=1.0,
            minimum_calls=1,
            window=0.001,
            break_duration=0.001,
            half_open_probes=1,
            clock=clock,
        )

        fail(breaker)

        assert breaker.state is CircuitState.OPEN
