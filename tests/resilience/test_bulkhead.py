"""Bulkhead: slots and the queue of calls that wait for one."""

from __future__ import annotations

import asyncio

import pytest

from app.resilience.bulkhead import Bulkhead


class TestBulkhead:
    @pytest.mark.parametrize("release_first", [False, True])
    async def test_release_as_the_wait_is_cancelled(self, release_first: bool) -> None:
        """A wait cancelled in the loop pass of a release stays a cancel.

        Whichever comes first, no slot is lost and no waiter stays queued.
        """
        bulkhead = Bulkhead(max_concurrent=1, max_queue=10)
        assert bulkhead.try_acquire()
        waiting = asyncio.ensure_future(bulkhead.acquire_queued())
        await asyncio.sleep(0)

        if release_first:
            bulkhead.release()
            waiting.cancel()
        else:
            waiting.cancel()
            bulkhead.release()

        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert bulkhead.queued == 0
        assert bulkhead.try_acquire()
