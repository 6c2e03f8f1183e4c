"""CallStats: rolling calls, errors, p99 and in-flight calls of one proxy."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from app.proxies import ServiceClientError
from app.proxies.stats import LATENCY_BOUNDS_MS, CallStats, estimate_quantile
from app.resilience.clock import ManualClock
from app.testing import Reply, ScriptedUpstream
from tests.conftest import ProxyFactory


@pytest.fixture
def clock() -> ManualClock:
    """Provide a clock that starts on a whole second."""
    return ManualClock()


@pytest.fixture
def stats(clock: ManualClock) -> CallStats:
    """Provide stats over 60 one-second buckets on the manual clock."""
    return CallStats(window=60, clock=clock)


class TestCounting:
    """Calls, errors, rate and error ratio over the window."""

    def test_empty_snapshot(self, stats: CallStats) -> None:
        """Without calls the figures are zero or None."""
        snapshot = stats.snapshot()

        assert snapshot.calls == 0
        assert snapshot.errors == 0
        assert snapshot.calls_per_second == 0.0
        assert snapshot.error_ratio is None
        assert snapshot.p99_ms is None
        assert snapshot.in_flight == 0

    def test_counts_calls_and_errors(self, stats: CallStats) -> None:
        """Each record counts one call, and a failed one also counts an error."""
        for _ in range(3):
            stats.record(5.0, False)
        stats.record(5.0, True)

        snapshot = stats.snapshot()

        assert snapshot.calls == 4
        assert snapshot.errors == 1
        assert snapshot.error_ratio == 0.25

    def test_rate_of_young_proxy(self, clock: ManualClock, stats: CallStats) -> None:
        """A proxy younger than the window divides by its age."""
        clock.advance(10.0)
        for _ in range(20):
            stats.record(1.0, False)

        snapshot = stats.snapshot()

        assert snapshot.window == 10.0
        assert snapshot.calls_per_second == 2.0

    def test_rate_has_one_second_floor(self, stats: CallStats) -> None:
        """Calls in the first second count over one second, not less."""
        for _ in range(5):
            stats.record(1.0, False)

        snapshot = stats.snapshot()

        assert snapshot.window == 1.0
        assert snapshot.calls_per_second == 5.0

    def test_rate_over_full_window(self, clock: ManualClock, stats: CallStats) -> None:
        """Past the window's length the rate is calls over the window."""
        for _ in range(120):
            stats.record(1.0, False)
            stats.record(1.0, False)
            clock.advance(1.0)

        snapshot = stats.snapshot()

        assert snapshot.window == 60.0
        # The current second has no calls yet, so 59 seconds of 2 calls remain.
        assert snapshot.calls == 118
        assert snapshot.calls_per_second == pytest.approx(118 / 60)

    def test_calls_expire(self, clock: ManualClock, stats: CallStats) -> None:
        """A call leaves the figures once the window has passed over it."""
        stats.record(1.0, True)
        clock.advance(59.0)
        before_expiry = stats.snapshot()
        clock.advance(1.0)
        expired = stats.snapshot()

        assert before_expiry.calls == 1
        assert before_expiry.errors == 1
        assert expired.calls == 0
        assert expired.errors == 0
        assert expired.error_ratio is None

    def test_idle_longer_than_window(
        self, clock: ManualClock, stats: CallStats
    ) -> None:
        """After a long idle time only new calls count."""
        stats.record(1.0, False)
        clock.advance(3600.0)
        stats.record(2.0, False)

        assert stats.snapshot().calls == 1

    def test_in_flight_is_reported(self, stats: CallStats) -> None:
        """The in-flight counter appears in the snapshot as it is."""
        stats.in_flight += 2

        assert stats.snapshot().in_flight == 2

    @pytest.mark.parametrize("window", [0, -1])
    def test_window_below_one_raises(self, clock: ManualClock, window: int) -> None:
        """A window under one second is a programming error."""
        with pytest.raises(ValueError, match="window"):
            CallStats(window=window, clock=clock)


class TestLatency:
    """The p99 estimate from the latency histogram."""

    def test_single_call_p99_near_duration(self, stats: CallStats) -> None:
        """One call's p99 lies within its bin, about 19 % above the duration."""
        stats.record(12.0, False)

        p99 = stats.snapshot().p99_ms

        assert p99 is not None
        assert 12.0 <= p99 <= 12.0 * 1.19

    def test_one_slow_call_in_hundred(self, stats: CallStats) -> None:
        """With 1 slow call in 100 the p99 stays with the fast ones."""
        for _ in range(99):
            stats.record(10.0, False)
        stats.record(500.0, True)

        p99 = stats.snapshot().p99_ms

        assert p99 is not None
        assert p99 <= 10.0 * 1.19

    def test_two_slow_calls_in_hundred(self, stats: CallStats) -> None:
        """With 2 slow calls in 100 the p99 moves to the slow ones."""
        for _ in range(98):
            stats.record(10.0, False)
        stats.record(500.0, False)
        stats.record(500.0, True)

        p99 = stats.snapshot().p99_ms

        assert p99 is not None
        assert 500.0 / 1.19 <= p99 <= 500.0 * 1.19

    @pytest.mark.parametrize("duration", [0.05, 0.3, 1.0, 7.5, 42.0, 980.0, 15000.0])
    def test_error_at_most_one_bin(self, clock: ManualClock, duration: float) -> None:
        """Every duration in range comes back within one bin's width."""
        stats = CallStats(clock=clock)
        for _ in range(10):
            stats.record(duration, False)

        p99 = stats.snapshot().p99_ms

        assert p99 is not None
        assert p99 <= max(duration * 1.19, LATENCY_BOUNDS_MS[0])
        assert p99 >= duration / 1.19 or duration < LATENCY_BOUNDS_MS[0]

    def test_duration_above_last_bound(self, stats: CallStats) -> None:
        """A call longer than the last bound reports that bound."""
        stats.record(LATENCY_BOUNDS_MS[-1] * 10, False)

        assert stats.snapshot().p99_ms == LATENCY_BOUNDS_MS[-1]

    def test_quantile_of_no_counts(self) -> None:
        """estimate_quantile returns None when every bin is empty."""
        assert estimate_quantile([0] * (len(LATENCY_BOUNDS_MS) + 1), 0.99) is None

    def test_bounds_grow_by_fixed_ratio(self) -> None:
        """Each bound is 2 ** 0.25 times the one before, up to over 100 s."""
        ratios = {
            round(upper / lower, 9)
            for lower, upper in itertools.pairwise(LATENCY_BOUNDS_MS)
        }

        assert ratios == {round(2**0.25, 9)}
        assert LATENCY_BOUNDS_MS[-1] > 100_000


class TestEngineRecording:
    """The call engine feeds the stats of its proxy."""

    async def test_success_and_failure_recorded(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A 200 and a 404 are two calls, one of them failed."""
        upstream.script(Reply.json({"ok": True}), Reply.json({"message": "no"}, 404))
        proxy = make_proxy(upstream.url)

        await proxy.get("/things/1")
        with pytest.raises(ServiceClientError):
            await proxy.get("/things/2")
        snapshot = proxy.engine.stats.snapshot()

        assert snapshot.calls == 2
        assert snapshot.errors == 1
        assert snapshot.p99_ms is not None
        assert snapshot.in_flight == 0

    async def test_in_flight_while_waiting(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A call waiting for its response counts as in flight until it ends."""
        upstream.script(Reply(hang=True))
        proxy = make_proxy(upstream.url, retries=0, timeout=5.0)

        call = asyncio.create_task(proxy.get("/things/1"))
        for _ in range(200):
            if upstream.hits:
                break
            await asyncio.sleep(0.01)
        during = proxy.engine.stats.snapshot().in_flight
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        after = proxy.engine.stats.snapshot()

        assert during == 1
        assert after.in_flight == 0
        # A cancelled call has no outcome, as in service_calls_total.
        assert after.calls == 0
