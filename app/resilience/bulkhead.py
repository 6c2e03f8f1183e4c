"""Bulkhead: a bound on concurrent calls to one service and on those waiting."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

__all__ = ["Bulkhead", "BulkheadRejectedError"]


class BulkheadRejectedError(Exception):
    """No slot is free and the queue of waiting calls is full."""


class Bulkhead:
    """Admit at most ``max_concurrent`` calls at once and queue ``max_queue`` more.

    A call past both bounds is rejected at once instead of piling up, so that one
    slow service cannot take every connection and task of the process. Slots are
    handed to waiters in arrival order.
    """

    __slots__ = ("_in_flight", "_max_queue", "_waiters", "max_concurrent")

    def __init__(self, *, max_concurrent: int, max_queue: int) -> None:
        if max_concurrent < 1:
            message = f"max_concurrent must be 1 or more, got {max_concurrent}"
            raise ValueError(message)
        if max_queue < 0:
            message = f"max_queue must be 0 or more, got {max_queue}"
            raise ValueError(message)
        self.max_concurrent = max_concurrent
        self._max_queue = max_queue
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def in_flight(self) -> int:
        """Calls holding a slot now."""
        return self._in_flight

    @property
    def queued(self) -> int:
        """Calls waiting for a slot now."""
        return len(self._waiters)

    def try_acquire(self) -> bool:
        """Take a free slot at once, or return False when none is free."""
        if self._in_flight < self.max_concurrent and not self._waiters:
            self._in_flight += 1
            return True
        return False

    async def acquire_queued(self) -> None:
        """Wait in the queue for a slot; bound the wait with ``asyncio.timeout``.

        Raises:
            BulkheadRejectedError: the queue is full.
        """
        if self.try_acquire():
            return
        if len(self._waiters) >= self._max_queue:
            message = (
                f"{self._in_flight} calls in flight and "
                f"{len(self._waiters)} waiting, the most allowed"
            )
            raise BulkheadRejectedError(message)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # The slot was handed over just as the wait was cancelled.
                self.release()
            else:
                # release() skips and drops a cancelled waiter, so it may be
                # gone from the queue already.
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back, handing it to the longest waiting call if any."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._in_flight -= 1
