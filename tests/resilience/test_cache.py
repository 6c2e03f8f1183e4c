"""ReadCache: freshness, coalescing, stale-if-error, eviction and invalidation."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
from typing import Any

import pytest

from app.resilience.cache import CacheResult, ReadCache

TTL = 60.0


class FakeClock:
    """Clock that returns a fixed time until a test advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += seconds


class Loader:
    """Async loader that counts its calls and can be held until released.

    The n-th call returns or raises the n-th result, and the last result repeats.
    """

    def __init__(self, *results: Any) -> None:
        self.calls = 0
        self._results = results or ("value",)
        self._gate = asyncio.Event()
        self._gate.set()

    def hold(self) -> None:
        """Make later and running calls wait until ``release``."""
        self._gate.clear()

    def release(self) -> None:
        """Let every waiting call finish."""
        self._gate.set()

    async def __call__(self) -> Any:
        self.calls += 1
        result = self._results[min(self.calls, len(self._results)) - 1]
        await self._gate.wait()
        if isinstance(result, Exception):
            raise result
        return result


async def wait_until(condition: Any, *, steps: int = 100) -> None:
    """Run the event loop until ``condition()`` is true, for at most ``steps`` turns."""
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0)
    pytest.fail(f"condition still false after {steps} event loop turns")


@pytest.fixture
def clock() -> FakeClock:
    """Give each test a clock of its own."""
    return FakeClock()


@pytest.fixture
def cache(clock: FakeClock) -> ReadCache:
    """Give each test an empty cache of ten entries on the fake clock."""
    return ReadCache(max_entries=10, clock=clock)


class TestFreshness:
    """Hits, misses and ttl expiry."""

    async def test_first_read_misses(self, cache: ReadCache) -> None:
        """The first read of a key calls the loader and reports a miss."""
        loader = Loader("alice")

        result = await cache.get_or_load("user:1", loader, ttl=TTL)

        assert result == CacheResult("alice", "miss", 0.0)
        assert loader.calls == 1
        assert len(cache) == 1

    async def test_fresh_entry_hits(self, cache: ReadCache, clock: FakeClock) -> None:
        """A read within ttl returns the stored value without calling the loader."""
        loader = Loader("alice", "bob")
        await cache.get_or_load("user:1", loader, ttl=TTL)
        clock.advance(TTL - 1)

        result = await cache.get_or_load("user:1", loader, ttl=TTL)

        assert result == CacheResult("alice", "hit", TTL - 1)
        assert loader.calls == 1

    async def test_expired_entry_reloads(
        self, cache: ReadCache, clock: FakeClock
    ) -> None:
        """A read at exactly ttl calls the loader again and stores the new value."""
        loader = Loader("alice", "bob")
        await cache.get_or_load("user:1", loader, ttl=TTL)
        clock.advance(TTL)

        reloaded = await cache.get_or_load("user:1", loader, ttl=TTL)
        hit = await cache.get_or_load("user:1", loader, ttl=TTL)

        assert reloaded == CacheResult("bob", "miss", 0.0)
        assert hit == CacheResult("bob", "hit", 0.0)
        assert loader.calls == 2

    async def test_keys_are_separate(self, cache: ReadCache) -> None:
        """Each key has an entry of its own."""
        await cache.get_or_load("user:1", Loader("alice"), ttl=TTL)

        result = await cache.get_or_load("user:2", Loader("bob"), ttl=TTL)

        assert result.value == "bob"
        assert len(cache) == 2

    async def test_result_is_frozen(self, cache: ReadCache) -> None:
        """A CacheResult cannot be changed after it is returned."""
        result = await cache.get_or_load("user:1", Loader(), ttl=TTL)

        with pytest.raises(dataclasses.FrozenInstanceError):
            result.source = "hit"  # type: ignore[misc]


class TestCoalescing:
    """Concurrent reads that share one load."""

    async def test_concurrent_reads_coalesce_into_one_load(
        self, cache: ReadCache
    ) -> None:
        """A hundred concurrent reads of one key call the loader once."""
        loader = Loader("alice")
        loader.hold()
        reads = [
            asyncio.create_task(cache.get_or_load("user:1", loader, ttl=TTL))
            for _ in range(100)
        ]
        await wait_until(lambda: loader.calls == 1)

        assert cache.in_flight == 1
        loader.release()
        results = await asyncio.gather(*reads)

        assert loader.calls == 1
        assert {result.value for result in results} == {"alice"}
        assert {result.source for result in results} == {"miss"}
        assert cache.in_flight == 0

    async def test_different_keys_load_separately(self, cache: ReadCache) -> None:
        """Concurrent reads of two keys run two loads."""
        loader = Loader("value")
        loader.hold()
        first = asyncio.create_task(cache.get_or_load("user:1", loader, ttl=TTL))
        second = asyncio.create_task(cache.get_or_load("user:2", loader, ttl=TTL))
        await wait_until(lambda: loader.calls == 2)

        assert cache.in_flight == 2
        loader.release()
        await asyncio.gather(first, second)

        assert loader.calls == 2
        assert len(cache) == 2

    async def test_error_reaches_every_reader(self, cache: ReadCache) -> None:
        """Every coalesced reader gets the loader's own exception object."""
        error = ConnectionError("user-service unreachable")
        loader = Loader(error)
        loader.hold()
        reads = [
            asyncio.create_task(cache.get_or_load("user:1", loader, ttl=TTL))
            for _ in range(10)
        ]
        await wait_until(lambda: loader.calls == 1)
        loader.release()

        outcomes = await asyncio.gather(*reads, return_exceptions=True)

        assert loader.calls == 1
        assert all(outcome is error for outcome in outcomes)

    async def test_failed_load_stores_nothing(self, cache: ReadCache) -> None:
        """A failed load leaves no entry, so the next read loads again."""
        loader = Loader(ConnectionError("down"), "alice")
        with pytest.raises(ConnectionError):
            await cache.get_or_load("user:1", loader, ttl=TTL)

        assert len(cache) == 0
        result = await cache.get_or_load("user:1", loader, ttl=TTL)

        assert result == CacheResult("alice", "miss", 0.0)
        assert loader.calls == 2

    async def test_finished_load_is_not_joined(self, cache: ReadCache) -> None:
        """A read after a failed load starts a new load instead of reusing it."""
        loader = Loader(ConnectionError("down"), "alice")
        with pytest.raises(ConnectionError):
            await cache.get_or_load("user:1", loader, ttl=TTL)

        await cache.get_or_load("user:1", loader, ttl=TTL)

        assert loader.calls == 2
        assert cache.in_flight == 0


class TestStaleIfError:
    """Serving an old entry when a reload fails."""

    async def test_error_within_window_serves_stale(
        self, cache: ReadCache, clock: FakeClock
    ) -> None:
        """A failed reload inside the window returns the old value as stale."""
        loader = Loader("alice", ConnectionError("down"))
        await cache.get_or_load("user:1", loader, ttl=TTL, stale_if_error=30)
        clock.advance(TTL + 29)

        result = await cache.get_or_load("user:1", loader, ttl=TTL, stale_if_error=30)

        assert result == CacheResult("alice", "stale", TTL + 29)
        assert loader.calls == 2

    async def test_waiting_reader_gets_fresh_entry_as_hit(
        self, cache: ReadCache, clock: FakeClock
    ) -> None:
        """stale_value of an entry within its ttl is a hit, after it a stale."""
        await cache.get_or_load("user:1", Loader("alice"), ttl=TTL, stale_if_error=30)
        clock.advance(TTL - 1)

        fresh = cache.stale_value("user:1", ttl=TTL, stale_if_error=30)
        clock.advance(2)
        old = cache.stale_value("user:1", ttl=TTL, stale_if_error=30)

        assert fresh == CacheResult("alice", "hit", TTL - 1)
        assert old == CacheResult("alice", "stale", TTL + 1)

    async def test_stale_keeps_old_entry(
        self, cache: ReadCache, clock: FakeClock
    ) -> None:
        """A failed reload neither replaces nor removes the stored entry."""
        loader = Loader("alice", ConnectionError("down"), "bob")
        await cache.get_or_load("user:1", loader, ttl=TTL, stale_if_error=30)
        clock.advance(TTL + 1)
        await cache.get_or_load("user:1", loader, ttl=TTL, stale_if_error=30)
        clock.advance(1)

        result = await cache.get_or_load("user:1", loader, ttl=TTL, stale_if_error=30)

        assert result == CacheResult("bob", "miss", 0.0)
        assert len(cache) == 1

    async def test_stale_reaches_every_reader(
        self, cache: ReadCache, clock: FakeClock
    ) -> None:
        """Every reader of a failed coalesced reload gets the stale value."""
        loader = Loader("alice", ConnectionError("down"))
        await cache.get_or_load("user:1", loader, ttl=TTL, stale_if_error=30)
        clock.advance(TTL)
        loader.hold()
        reads = [
            asyncio.create_task(
                cache.get_or_load("user:1", loader, ttl=TTL, stale_if_error=30)
            )
            for _ in range(10)
        ]
        await wait_until(lambda: loader.calls == 2)
        loader.release()

        results = await asyncio.gather(*reads)

        assert loader.calls == 2
        assert {result.value for result in results} == {"alice"}
        assert {result.source for result in results} == {"stale"}

    async def test_error_beyond_window_raises(
        self, cache: ReadCache, clock: FakeClock
    ) -> None:
        """A failed reload at ttl + stale_if_error raises the loader's error."""
        error = ConnectionError("down")
        loader = Loader("alice", error)
        await cache.get_or_load("user:1", loader, ttl=TTL, stale_if_error=30)
        clock.advance(TTL + 30)

        with pytest.raises(ConnectionError) as caught:
            await cache.get_or_load("user:1", loader, ttl=TTL, stale_if_error=30)

        assert caught.value is error

    async def test_no_window_by_default(
        self, cache: ReadCache, clock: FakeClock
    ) -> None:
        """Without stale_if_error a failed reload after ttl raises."""
        loader = Loader("alice", ConnectionError("down"))
        await cache.get_or_load("user:1", loader, ttl=TTL)
        clock.advance(TTL)

        with pytest.raises(ConnectionError):
            await cache.get_or_load("user:1", loader, ttl=TTL)

    async def test_too_old_entry_dropped(
        self, cache: ReadCache, clock: FakeClock
    ) -> None:
        """An entry past ttl + stale_if_error is removed when a read finds it."""
        loader = Loader("alice", "bob")
        await cache.get_or_load("user:1", loader, ttl=TTL, stale_if_error=30)
        clock.advance(TTL + 30)
        loader.hold()

        read = asyncio.create_task(
            cache.get_or_load("user:1", loader, ttl=TTL, stale_if_error=30)
        )
        await wait_until(lambda: loader.calls == 2)

        assert len(cache) == 0
        loader.release()
        await read

    async def test_predicate_false_raises(
        self, cache: ReadCache, clock: FakeClock
    ) -> None:
        """A failed reload raises when serve_stale rejects the error."""
        error = PermissionError("forbidden")
        loader = Loader("alice", error)
        await cache.get_or_load("user:1", loader, ttl=TTL, stale_if_error=30)
        clock.advance(TTL)

        with pytest.raises(PermissionError) as caught:
            await cache.get_or_load(
                "user:1",
                loader,
                ttl=TTL,
                stale_if_error=30,
                serve_stale=lambda exc: False,
            )

        assert caught.value is error
        assert len(cache) == 1

    async def test_predicate_gets_error(
        self, cache: ReadCache, clock: FakeClock
    ) -> None:
        """serve_stale receives the loader's exception object."""
        error = ConnectionError("down")
        loader = Loader("alice", error)
        seen: list[BaseException] = []

        def record(exc: BaseException) -> bool:
            seen.append(exc)
            return True

        await cache.get_or_load("user:1", loader, ttl=TTL, stale_if_error=30)
        clock.advance(TTL)

        await cache.get_or_load(
            "user:1", loader, ttl=TTL, stale_if_error=30, serve_stale=record
        )

        assert seen == [error]
        assert seen[0] is error


class TestEviction:
    """The max_entries bound and least-recently-used order."""

    async def test_oldest_entry_evicted(self, clock: FakeClock) -> None:
        """Storing past max_entries evicts the least recently used entry."""
        cache = ReadCache(max_entries=2, clock=clock)
        for key in ("a", "b", "c"):
            await cache.get_or_load(key, Loader(key), ttl=TTL)

        reread = Loader("a again")
        result = await cache.get_or_load("a", reread, ttl=TTL)

        assert len(cache) == 2
        assert result.source == "miss"

    async def test_hit_refreshes_recency(self, clock: FakeClock) -> None:
        """A hit makes its entry the most recently used one."""
        cache = ReadCache(max_entries=2, clock=clock)
        await cache.get_or_load("a", Loader("a"), ttl=TTL)
        await cache.get_or_load("b", Loader("b"), ttl=TTL)
        await cache.get_or_load("a", Loader("a"), ttl=TTL)
        await cache.get_or_load("c", Loader("c"), ttl=TTL)

        kept = await cache.get_or_load("a", Loader("a again"), ttl=TTL)
        evicted = await cache.get_or_load("b", Loader("b again"), ttl=TTL)

        assert kept.source == "hit"
        assert evicted.source == "miss"


class TestInvalidateGroup:
    """Removing a group's entries and keeping its running loads from storing."""

    async def test_removes_group_entries(self, cache: ReadCache) -> None:
        """Invalidation removes the group's entries and counts them."""
        await cache.get_or_load("user:1", Loader(), ttl=TTL, group=1)
        await cache.get_or_load("user:1:roles", Loader(), ttl=TTL, group=1)
        await cache.get_or_load("user:2", Loader(), ttl=TTL, group=2)

        removed = cache.invalidate_group(1)

        assert removed == 2
        assert len(cache) == 1

    async def test_other_groups_stay(self, cache: ReadCache) -> None:
        """Entries of other groups and ungrouped entries still hit."""
        await cache.get_or_load("user:1", Loader(), ttl=TTL, group=1)
        await cache.get_or_load("user:2", Loader(), ttl=TTL, group=2)
        await cache.get_or_load("config", Loader(), ttl=TTL)

        cache.invalidate_group(1)
        other = await cache.get_or_load("user:2", Loader(), ttl=TTL, group=2)
        ungrouped = await cache.get_or_load("config", Loader(), ttl=TTL)

        assert other.source == "hit"
        assert ungrouped.source == "hit"

    async def test_invalidated_key_reloads(self, cache: ReadCache) -> None:
        """A read after invalidation calls the loader again."""
        loader = Loader("before", "after")
        await cache.get_or_load("user:1", loader, ttl=TTL, group=1)
        cache.invalidate_group(1)

        result = await cache.get_or_load("user:1", loader, ttl=TTL, group=1)

        assert result == CacheResult("after", "miss", 0.0)

    async def test_unknown_group_removes_nothing(self, cache: ReadCache) -> None:
        """Invalidating a group with no entries returns 0."""
        await cache.get_or_load("user:1", Loader(), ttl=TTL, group=1)

        assert cache.invalidate_group(2) == 0
        assert len(cache) == 1

    async def test_running_load_not_stored(self, cache: ReadCache) -> None:
        """A load running during invalidation returns its value but stores nothing."""
        loader = Loader("before write")
        loader.hold()
        read = asyncio.create_task(
            cache.get_or_load("user:1", loader, ttl=TTL, group=1)
        )
        await wait_until(lambda: loader.calls == 1)

        cache.invalidate_group(1)
        loader.release()
        result = await read

        assert result == CacheResult("before write", "miss", 0.0)
        assert len(cache) == 0

    async def test_later_read_not_joined(self, cache: ReadCache) -> None:
        """A read after invalidation starts a new load instead of joining the old."""
        loader = Loader("before write", "after write")
        loader.hold()
        old = asyncio.create_task(cache.get_or_load("user:1", loader, ttl=TTL, group=1))
        await wait_until(lambda: loader.calls == 1)
        cache.invalidate_group(1)

        new = asyncio.create_task(cache.get_or_load("user:1", loader, ttl=TTL, group=1))
        await wait_until(lambda: loader.calls == 2)

        assert cache.in_flight == 2
        loader.release()
        assert (await old).value == "before write"
        assert (await new).value == "after write"
        hit = await cache.get_or_load("user:1", loader, ttl=TTL, group=1)
        assert hit == CacheResult("after write", "hit", 0.0)

    async def test_other_group_load_stored(self, cache: ReadCache) -> None:
        """Invalidating one group leaves running loads of other groups alone."""
        loader = Loader("bob")
        loader.hold()
        read = asyncio.create_task(
            cache.get_or_load("user:2", loader, ttl=TTL, group=2)
        )
        await wait_until(lambda: loader.calls == 1)

        cache.invalidate_group(1)
        loader.release()
        await read

        assert len(cache) == 1

    async def test_evicted_group_forgotten(self, clock: FakeClock) -> None:
        """The group index drops a group once its last entry is evicted."""
        cache = ReadCache(max_entries=1, clock=clock)
        await cache.get_or_load("user:1", Loader(), ttl=TTL, group=1)
        await cache.get_or_load("user:2", Loader(), ttl=TTL, group=2)

        assert cache.invalidate_group(1) == 0
        assert list(cache._entries._keys_by_group) == [2]

    async def test_reload_moves_key_group(
        self, cache: ReadCache, clock: FakeClock
    ) -> None:
        """A reload stored under another group moves the key to that group."""
        await cache.get_or_load("user:1", Loader(), ttl=TTL, stale_if_error=30, group=1)
        clock.advance(TTL)
        await cache.get_or_load("user:1", Loader(), ttl=TTL, stale_if_error=30, group=2)

        assert cache.invalidate_group(1) == 0
        assert cache.invalidate_group(2) == 1

    async def test_none_group_rejected(self, cache: ReadCache) -> None:
        """Invalidating the None group raises ValueError."""
        with pytest.raises(ValueError, match="group must not be None"):
            cache.invalidate_group(None)


class TestClear:
    """Removing everything."""

    async def test_clear_removes_entries(self, cache: ReadCache) -> None:
        """clear() removes grouped and ungrouped entries."""
        await cache.get_or_load("user:1", Loader(), ttl=TTL, group=1)
        await cache.get_or_load("config", Loader(), ttl=TTL)

        cache.clear()

        assert len(cache) == 0
        assert cache.invalidate_group(1) == 0

    async def test_clear_stops_running_store(self, cache: ReadCache) -> None:
        """A load running during clear() returns its value but stores nothing."""
        loader = Loader("alice")
        loader.hold()
        read = asyncio.create_task(cache.get_or_load("user:1", loader, ttl=TTL))
        await wait_until(lambda: loader.calls == 1)

        cache.clear()
        loader.release()
        result = await read

        assert result.value == "alice"
        assert len(cache) == 0


class TestCancellation:
    """Readers cancelled while a shared load runs."""

    async def test_other_readers_unaffected(self, cache: ReadCache) -> None:
        """Cancelling one reader leaves the load and the other reader running."""
        loader = Loader("alice")
        loader.hold()
        cancelled = asyncio.create_task(cache.get_or_load("user:1", loader, ttl=TTL))
        waiting = asyncio.create_task(cache.get_or_load("user:1", loader, ttl=TTL))
        await wait_until(lambda: loader.calls == 1)

        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        loader.release()
        result = await waiting

        assert result == CacheResult("alice", "miss", 0.0)
        assert loader.calls == 1

    async def test_all_cancelled_still_stores(self, cache: ReadCache) -> None:
        """A load whose readers were all cancelled finishes and stores its value."""
        loader = Loader("alice")
        loader.hold()
        reads = [
            asyncio.create_task(cache.get_or_load("user:1", loader, ttl=TTL))
            for _ in range(3)
        ]
        await wait_until(lambda: loader.calls == 1)
        for read in reads:
            read.cancel()
        await asyncio.gather(*reads, return_exceptions=True)

        assert cache.in_flight == 1
        loader.release()
        await wait_until(lambda: cache.in_flight == 0)

        result = await cache.get_or_load("user:1", loader, ttl=TTL)
        assert result == CacheResult("alice", "hit", 0.0)
        assert loader.calls == 1

    async def test_orphaned_error_not_logged(self, cache: ReadCache) -> None:
        """A failed load with no reader left is not reported as never retrieved."""
        loop = asyncio.get_running_loop()
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _, context: reported.append(context))
        loader = Loader(ConnectionError("down"))
        loader.hold()
        read = asyncio.create_task(cache.get_or_load("user:1", loader, ttl=TTL))
        await wait_until(lambda: loader.calls == 1)

        read.cancel()
        await asyncio.gather(read, return_exceptions=True)
        loader.release()
        await wait_until(lambda: cache.in_flight == 0)
        del read
        gc.collect()
        await asyncio.sleep(0)

        loop.set_exception_handler(None)
        assert reported == []
        assert len(cache) == 0

    async def test_invalidated_orphan_finishes(self, cache: ReadCache) -> None:
        """An invalidated load with no reader left still runs to the end."""
        loader = Loader("alice")
        loader.hold()
        read = asyncio.create_task(
            cache.get_or_load("user:1", loader, ttl=TTL, group=1)
        )
        await wait_until(lambda: loader.calls == 1)
        read.cancel()
        await asyncio.gather(read, return_exceptions=True)
        cache.invalidate_group(1)
        gc.collect()

        assert cache.in_flight == 1
        loader.release()
        await wait_until(lambda: cache.in_flight == 0)
        assert len(cache) == 0


class TestValidation:
    """Argument checks."""

    @pytest.mark.parametrize("max_entries", [0, -1])
    def test_max_entries_below_one(self, max_entries: int) -> None:
        """max_entries below 1 raises ValueError naming the argument."""
        with pytest.raises(ValueError, match=r"max_entries must be an integer >= 1"):
            ReadCache(max_entries=max_entries)

    @pytest.mark.parametrize("ttl", [0.0, -1.0, float("nan")])
    async def test_ttl_not_positive(self, cache: ReadCache, ttl: float) -> None:
        """A ttl that is not > 0 raises ValueError naming the argument."""
        with pytest.raises(ValueError, match=r"ttl must be > 0 seconds"):
            await cache.get_or_load("user:1", Loader(), ttl=ttl)

    @pytest.mark.parametrize("stale_if_error", [-1.0, float("nan")])
    async def test_stale_if_error_invalid(
        self, cache: ReadCache, stale_if_error: float
    ) -> None:
        """A stale_if_error that is not >= 0 raises ValueError naming the argument."""
        with pytest.raises(ValueError, match=r"stale_if_error must be >= 0 seconds"):
            await cache.get_or_load(
                "user:1", Loader(), ttl=TTL, stale_if_error=stale_if_error
            )

    async def test_checked_before_hit(self, cache: ReadCache) -> None:
        """An invalid ttl raises even when the key has a fresh entry."""
        await cache.get_or_load("user:1", Loader(), ttl=TTL)

        with pytest.raises(ValueError, match="ttl"):
            await cache.get_or_load("user:1", Loader(), ttl=0)
