"""SharedTimeouts: attempts timed by one shared timer, on a real event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

import pytest

from app.resilience.timeouts import LATE_LIMIT, SharedTimeouts


async def _attempt(timeouts: SharedTimeouts, seconds: float, work: float) -> str:
    """Sleep ``work`` seconds under a timeout of ``seconds``."""
    return await timeouts.wait_for(asyncio.sleep(work, "done"), seconds)


async def _timed(awaitable: Awaitable[str]) -> tuple[str, float]:
    started = time.monotonic()
    try:
        result = await awaitable
    except TimeoutError:
        result = "timeout"
    return result, time.monotonic() - started


class TestSharedTimeouts:
    async def test_attempt_in_time_is_not_cancelled(self) -> None:
        timeouts = SharedTimeouts()
        assert await _attempt(timeouts, 1.0, 0.001) == "done"
        assert len(timeouts) == 0

    async def test_late_attempt_raises_timeout_error(self) -> None:
        timeouts = SharedTimeouts()
        result, took = await _timed(asyncio.ensure_future(_attempt(timeouts, 0.02, 5)))
        assert result == "timeout"
        assert 0.02 <= took < 0.5
        assert len(timeouts) == 0

    async def test_attempts_of_one_length_expire_in_order(self) -> None:
        timeouts = SharedTimeouts()
        runs = [
            asyncio.ensure_future(
                _timed(asyncio.ensure_future(_attempt(timeouts, 0.05, work)))
            )
            for work in (5, 0.001, 5, 0.001, 5)
        ]
        results = await asyncio.gather(*runs)
        assert [result for result, _ in results] == [
            "timeout",
            "done",
            "timeout",
            "done",
            "timeout",
        ]
        for result, took in results:
            if result == "timeout":
                assert 0.05 <= took < 0.5

    async def test_shorter_after_longer_expires_on_time(self) -> None:
        timeouts = SharedTimeouts()
        long = asyncio.ensure_future(
            _timed(asyncio.ensure_future(_attempt(timeouts, 5, 0.3)))
        )
        await asyncio.sleep(0)
        short = await _timed(asyncio.ensure_future(_attempt(timeouts, 0.02, 5)))
        assert short[0] == "timeout"
        assert short[1] < 0.2, "the short attempt waited for the long one's timer"
        assert (await long)[0] == "done"
        assert len(timeouts) == 0

    async def test_shorter_after_finished_longer_on_time(
        self,
    ) -> None:
        timeouts = SharedTimeouts()
        assert await _attempt(timeouts, 3.0, 0.001) == "done"
        result, took = await _timed(_attempt(timeouts, 0.05, 5))
        assert result == "timeout"
        assert took < 0.5, "the attempt waited for the finished attempt's timer"

    async def test_slightly_out_of_order_attempt_expires(
        self,
    ) -> None:
        timeouts = SharedTimeouts()
        first = asyncio.ensure_future(_attempt(timeouts, 0.05, 5))
        await asyncio.sleep(0)
        second = await _timed(
            asyncio.ensure_future(_attempt(timeouts, 0.05 - LATE_LIMIT / 2, 5))
        )
        assert second[0] == "timeout"
        with pytest.raises(TimeoutError):
            await first

    async def test_cancel_from_outside_stays_a_cancellation(self) -> None:
        timeouts = SharedTimeouts()
        task = asyncio.ensure_future(_attempt(timeouts, 5, 5))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(timeouts) == 0

    async def test_cancel_just_before_timeout_wins(self) -> None:
        timeouts = SharedTimeouts()
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(_attempt(timeouts, 0.05, 5))
        # The loop is blocked past both times, so that the outside cancel and
        # the timeout run in one pass of the loop, the cancel first.
        loop.call_later(0.045, task.cancel)
        loop.call_later(0.04, time.sleep, 0.03)
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(timeouts) == 0

    async def test_second_attempt_in_one_task_is_not_taken(self) -> None:
        timeouts = SharedTimeouts()
        task = timeouts.enter(1.0)
        assert task is not None
        assert task is asyncio.current_task()
        assert timeouts.enter(1.0) is None
        timeouts.leave(task)
        assert timeouts.enter(1.0) is task
        timeouts.leave(task)

    async def test_outside_a_task_nothing_is_taken(self) -> None:
        timeouts = SharedTimeouts()
        entered: list[object] = []
        loop = asyncio.get_running_loop()
        loop.call_soon(lambda: entered.append(timeouts.enter(1.0)))
        await asyncio.sleep(0.01)
        assert entered == [None]

    def test_works_on_a_new_event_loop(self) -> None:
        timeouts = SharedTimeouts()
        for _ in range(2):
            result = asyncio.run(_timed(_attempt(timeouts, 0.02, 5)))
            assert result[0] == "timeout"


class TestWaitFor:
    async def test_returns_the_result_in_time(self) -> None:
        timeouts = SharedTimeouts()
        assert await timeouts.wait_for(asyncio.sleep(0.001, "done"), 1.0) == "done"
        assert len(timeouts) == 0

    async def test_raises_timeout_error_when_late(self) -> None:
        timeouts = SharedTimeouts()
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await timeouts.wait_for(asyncio.sleep(5), 0.02)
        assert time.monotonic() - started < 0.5
        assert len(timeouts) == 0

    async def test_nested_in_one_task_uses_its_own_timer(self) -> None:
        timeouts = SharedTimeouts()
        inner = timeouts.wait_for(asyncio.sleep(5), 0.02)
        with pytest.raises(TimeoutError):
            await timeouts.wait_for(inner, 1.0)
