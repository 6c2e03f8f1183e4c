"""Attempt timeouts that share one event-loop timer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["LATE_LIMIT", "SharedTimeouts"]

_Task = asyncio.Task[Any]
T = TypeVar("T")

# Seconds an attempt registered out of order may expire late. asyncio's
# selector loops already round their waits up to whole milliseconds.
LATE_LIMIT = 0.001


class SharedTimeouts:
    """Time out the attempts of one service with one shared timer.

    aiohttp's request timeout, like ``asyncio.timeout``, schedules a timer for
    every request and cancels it when the request ends. On the benchmark
    machine that cost more CPU per loopback call than the breaker, budget and
    bulkhead together; BENCHMARKS.md, section 7, measures it.

    Here an attempt registers its task and its expiry in a dict, which keeps
    insertion order. Attempts of one length, such as the service's timeout,
    expire in the order they started, so one timer set for the oldest entry
    finds the expired attempts at the front. It cancels their tasks, as
    ``asyncio.timeout`` does, and is set again for the next entry.

    An attempt that would expire more than ``LATE_LIMIT`` before one already
    registered, such as one cut short by its deadline, gets a timer of its
    own. One within that limit may expire up to that late. Not thread-safe:
    use one from one event loop.
    """

    __slots__ = (
        "_cancelling",
        "_clock",
        "_entries",
        "_fired",
        "_last",
        "_loop",
        "_own",
        "_timer",
        "_timer_at",
    )

    def __init__(self) -> None:
        # Task -> loop time of its expiry, in the order the attempts started.
        self._entries: dict[_Task, float] = {}
        # Task -> its cancelling() count when its attempt started, if not 0.
        self._cancelling: dict[_Task, int] = {}
        # Task -> its cancelling() count when its attempt started, once this
        # object has cancelled it.
        self._fired: dict[_Task, int] = {}
        # Task -> the timer of its own, for an attempt registered out of order.
        self._own: dict[_Task, asyncio.TimerHandle] = {}
        self._last = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        # The loop's time() or, for asyncio's own loops, the clock it reads.
        self._clock: Callable[[], float] = time.monotonic
        self._timer: asyncio.TimerHandle | None = None
        # Loop time at which the shared timer fires.
        self._timer_at = 0.0

    def __len__(self) -> int:
        """Return the number of attempts registered and not yet expired."""
        return len(self._entries) + len(self._own)

    def enter(self, seconds: float) -> _Task | None:
        """Register the current task's attempt for ``seconds``.

        Returns the task, which the caller passes to ``expired`` and
        ``leave``, or None when the caller must time the attempt some other
        way: outside a task, or in a task with an attempt already registered.
        """
        task = asyncio.current_task()
        if task is None:
            return None
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._reset(loop)
        entries = self._entries
        if task in entries or task in self._own:
            return None
        # Counted now, as asyncio.timeout does, so that a cancellation requested
        # by someone else before the timer fires is never taken for the timeout.
        cancelling = task.cancelling()
        if cancelling:
            self._cancelling[task] = cancelling
        expires = self._clock() + seconds
        if not entries or expires > self._last:
            self._last = expires
        elif expires < self._last - LATE_LIMIT:
            self._own[task] = loop.call_at(expires, self._expire_own, task)
            return task
        entries[task] = expires
        timer = self._timer
        if timer is None or expires < self._timer_at:
            # The timer may still be set for an attempt that has already left.
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(expires, self._expire)
            self._timer_at = expires
        return task

    async def wait_for(self, awaitable: Awaitable[T], seconds: float) -> T:
        """Await ``awaitable`` for at most ``seconds``, like ``asyncio.wait_for``.

        Raises:
            TimeoutError: ``seconds`` passed first; the awaitable was cancelled.
        """
        task = self.enter(seconds)
        if task is None:
            async with asyncio.timeout(seconds):
                return await awaitable
        try:
            return await awaitable
        except asyncio.CancelledError:
            if not self.expired(task):
                raise
            raise TimeoutError from None
        finally:
            self.leave(task)

    def expired(self, task: _Task) -> bool:
        """Tell whether a CancelledError in ``task`` is its attempt's timeout.

        Call it where the attempt catches CancelledError. It is True when this
        object cancelled the task and nothing else requested a cancellation
        too. The cancellation is then withdrawn, so the caller raises
        TimeoutError.
        """
        cancelling = self._fired.pop(task, None)
        if cancelling is None:
            return False
        return task.uncancel() <= cancelling

    def leave(self, task: _Task) -> None:
        """Unregister the attempt of ``task`` once it ends, however it ended."""
        if self._cancelling:
            self._cancelling.pop(task, None)
        if self._entries.pop(task, None) is None:
            timer = self._own.pop(task, None)
            if timer is not None:
                timer.cancel()
                return
            cancelling = self._fired.pop(task, None)
            if cancelling is not None:
                # Cancelled for the timeout as the attempt was ending anyway.
                task.uncancel()

    def _expire(self) -> None:
        """Cancel the tasks whose attempts expired; set the timer for the next."""
        self._timer = None
        loop = self._loop
        if loop is None:  # pragma: no cover - the timer runs on the loop it was set on
            return
        now = loop.time()
        due: list[_Task] = []
        for task, expires in self._entries.items():
            if expires > now:
                self._timer = loop.call_at(expires, self._expire)
                self._timer_at = expires
                break
            due.append(task)
        for task in due:
            del self._entries[task]
            self._cancel(task)

    def _expire_own(self, task: _Task) -> None:
        """Cancel the task of an attempt that had a timer of its own."""
        del self._own[task]
        self._cancel(task)

    def _cancel(self, task: _Task) -> None:
        self._fired[task] = self._cancelling.pop(task, 0)
        task.cancel()

    def _reset(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start over on a new event loop; the old loop's attempts are gone."""
        if self._timer is not None:
            self._timer.cancel()
        for timer in self._own.values():
            timer.cancel()
        self._entries.clear()
        self._cancelling.clear()
        self._fired.clear()
        self._own.clear()
        self._timer = None
        self._timer_at = 0.0
        self._last = 0.0
        self._loop = loop
        # BaseEventLoop.time() returns time.monotonic(), so calling that
        # directly saves a Python call on every attempt. Other loops keep
        # their own.
        base_time = asyncio.BaseEventLoop.time
        own_time = getattr(type(loop), "time", None)
        self._clock = time.monotonic if own_time is base_time else loop.time
