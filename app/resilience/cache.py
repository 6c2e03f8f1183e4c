"""ReadCache: an in-process LRU cache that coalesces concurrent loads of one key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, cast

from cachetools import LRUCache

__all__ = [
    "CacheResult",
    "CacheSource",
    "Load",
    "LoadCoalescer",
    "ReadCache",
    "ReadThroughCache",
    "check_durations",
]

T = TypeVar("T")
LoadT = TypeVar("LoadT", bound="Load")

CacheSource = Literal["hit", "miss", "stale"]


@dataclass(frozen=True, slots=True)
class CacheResult(Generic[T]):
    """A value read through the cache and where it came from."""

    value: T
    source: CacheSource
    """"hit" for a fresh entry, "miss" for a new load, "stale" for an old entry
    served because the load failed."""
    age: float
    """Seconds since the value was loaded, or 0.0 for a miss."""


@dataclass(frozen=True, slots=True)
class _Entry:
    value: object
    loaded_at: float
    group: Hashable | None


@dataclass(eq=False, slots=True)
class Load:
    """A running loader call and the group that its result is stored under."""

    group: Hashable | None
    task: asyncio.Task[object] = field(init=False)


class ReadThroughCache(Protocol):
    """The read cache of a proxy: `ReadCache` in process, or one shared in Redis."""

    async def get_or_load(
        self,
        key: tuple[str, str],
        loader: Callable[[], Awaitable[T]],
        *,
        model: type[T],
        ttl: float,
        stale_if_error: float = 0.0,
        group: str,
        serve_stale: Callable[[BaseException], bool] = ...,
    ) -> CacheResult[T]:
        """Read ``key`` through the cache, calling ``loader`` when no entry is fresh."""
        ...

    def stale_value(
        self, key: tuple[str, str], *, ttl: float, stale_if_error: float
    ) -> CacheResult[object] | None:
        """Return the value of ``key`` that may still serve after an error."""
        ...

    async def invalidate(self, group: str) -> None:
        """Remove the entries of ``group`` and keep its running loads from storing."""
        ...


class LoadCoalescer(Generic[LoadT]):
    """Run at most one loader call per key, shared by every reader of the key.

    ``store`` gets the key, the load and the value of every load that ends while
    still current. ``forget_group`` and ``clear`` make loads no longer current:
    such a load still returns its value to the readers that joined it, but later
    readers start a new one and its value is not stored.
    """

    def __init__(
        self, store: Callable[[Hashable, LoadT, object], Awaitable[None] | None]
    ) -> None:
        self._store = store
        # The load that later readers of a key join.
        self._loads: dict[Hashable, LoadT] = {}
        # Strong references to every running load task, joined or not, because the
        # event loop keeps only weak ones and a load must finish even when every
        # reader was cancelled.
        self._tasks: set[asyncio.Task[object]] = set()

    def __len__(self) -> int:
        """Count the loader calls running now, including ones no longer current."""
        return len(self._tasks)

    def get(self, key: Hashable) -> LoadT | None:
        """Return the current load of ``key``, if one is running."""
        return self._loads.get(key)

    def start(
        self, key: Hashable, loader: Callable[[], Awaitable[object]], load: LoadT
    ) -> LoadT:
        """Run ``loader`` in a task as the current load of ``key``."""
        # Registered before the task exists, in case an eager task factory runs
        # the whole load inside create_task.
        self._loads[key] = load
        load.task = asyncio.create_task(self._run(key, loader, load))
        self._tasks.add(load.task)
        load.task.add_done_callback(self._finish)
        return load

    def forget_group(self, group: Hashable) -> list[LoadT]:
        """Make the loads of ``group`` no longer current and return them."""
        forgotten = [
            (key, load) for key, load in self._loads.items() if load.group == group
        ]
        for key, _ in forgotten:
            del self._loads[key]
        return [load for _, load in forgotten]

    def clear(self) -> None:
        """Make every running load no longer current."""
        self._loads.clear()

    async def _run(
        self, key: Hashable, loader: Callable[[], Awaitable[object]], load: LoadT
    ) -> object:
        try:
            value = await loader()
        finally:
            is_current = self._loads.get(key) is load
            if is_current:
                del self._loads[key]

        if is_current:
            stored = self._store(key, load, value)
            if stored is not None:
                await stored
        return value

    def _finish(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        # Retrieving the exception keeps asyncio from logging "Task exception was
        # never retrieved", whether or not a reader still awaits the task.
        if not task.cancelled():
            task.exception()


class _GroupedLRUCache(LRUCache[Hashable, _Entry]):
    """LRU storage that indexes its keys by entry group.

    Every removal path (eviction, pop, del, clear) updates the index, so a group is
    forgotten as soon as its last entry goes. Entries without a group are not indexed.
    """

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self._keys_by_group: dict[Hashable, set[Hashable]] = {}

    def __setitem__(self, key: Hashable, entry: _Entry) -> None:
        if key in self:
            # Reading the old entry moves the key to the recent end, which the
            # store below does anyway.
            self._unindex(key, self[key].group)
        super().__setitem__(key, entry)
        if entry.group is not None:
            self._keys_by_group.setdefault(entry.group, set()).add(key)

    def __delitem__(self, key: Hashable) -> None:
        group = self[key].group
        super().__delitem__(key)
        self._unindex(key, group)

    def clear(self) -> None:
        # cachetools 8.0 clears its storage directly, without calling __delitem__.
        super().clear()
        self._keys_by_group.clear()

    def keys_in_group(self, group: Hashable) -> list[Hashable]:
        """Return the keys stored under ``group``."""
        return list(self._keys_by_group.get(group, ()))

    def _unindex(self, key: Hashable, group: Hashable | None) -> None:
        if group is None:
            return
        keys = self._keys_by_group[group]
        keys.discard(key)
        if not keys:
            del self._keys_by_group[group]


class ReadCache:
    """Cache the results of async reads, with one load per key at a time.

    Concurrent reads of a key that has no fresh entry share one loader call. A failed
    load may fall back to the stored entry for ``stale_if_error`` seconds past its
    ``ttl``. Each key must always be loaded with values of one type, because the
    cache cannot check the type that a caller expects.
    """

    def __init__(
        self, *, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            message = f"max_entries must be an integer >= 1, got {max_entries!r}"
            raise ValueError(message)

        self._clock = clock
        self._entries = _GroupedLRUCache(max_entries)
        # Invalidation drops a group's loads, so they no longer store their
        # results or take new readers.
        self._loads: LoadCoalescer[Load] = LoadCoalescer(self._store_loaded)

    def __len__(self) -> int:
        """Count the stored entries, expired ones included until a read drops them."""
        return len(self._entries)

    @property
    def in_flight(self) -> int:
        """Number of loader calls running now, including invalidated ones."""
        return len(self._loads)

    async def get_or_load(
        self,
        key: Hashable,
        loader: Callable[[], Awaitable[T]],
        *,
        ttl: float,
        stale_if_error: float = 0.0,
        group: Hashable | None = None,
        serve_stale: Callable[[BaseException], bool] = lambda exc: True,
        model: type[Any] | None = None,
    ) -> CacheResult[T]:
        """Read ``key`` through the cache, calling ``loader`` when no entry is fresh.

        An entry is fresh while younger than ``ttl`` seconds. When ``loader`` raises
        an ``Exception``, the stored entry is returned as "stale" if it is younger
        than ``ttl + stale_if_error`` and ``serve_stale(exc)`` is true. Otherwise the
        loader's exception propagates unchanged. ``group`` tags the stored entry for
        ``invalidate_group``. The group of the reader that starts a load is the one
        used, and readers that join the load keep their own ``ttl``,
        ``stale_if_error`` and ``serve_stale``. ``model``, the type of the values,
        is accepted for `ReadThroughCache` and unused, since the entries are the
        objects themselves.

        Raises:
            ValueError: ``ttl`` is not > 0 or ``stale_if_error`` is not >= 0.
        """
        check_durations(ttl, stale_if_error)

        max_age = ttl + stale_if_error
        entry, age = self._lookup(key, max_age)
        if entry is not None and age < ttl:
            return CacheResult(cast(T, entry.value), "hit", age)

        load = self._loads.get(key)
        if load is None:
            load = self._loads.start(key, loader, Load(group))

        try:
            # The shield keeps one reader's cancellation from cancelling the load
            # that other readers wait for.
            value = await asyncio.shield(load.task)
        except Exception as exc:
            entry, age = self._lookup(key, max_age)
            if entry is None or not serve_stale(exc):
                raise
            return CacheResult(cast(T, entry.value), "stale", age)

        return CacheResult(cast(T, value), "miss", 0.0)

    def invalidate_group(self, group: Hashable) -> int:
        """Remove the entries of ``group`` and keep its running loads from storing.

        A running load of the group still returns its result to the readers that
        already wait for it, but a later read starts a new load. So data read before
        the invalidation is neither stored nor returned to reads that start after it.
        Returns the number of entries removed.

        Raises:
            ValueError: ``group`` is None. Entries stored without a group can only
                be removed by ``clear``.
        """
        if group is None:
            message = "group must not be None. Use clear() to remove ungrouped entries"
            raise ValueError(message)

        keys = self._entries.keys_in_group(group)
        for key in keys:
            del self._entries[key]
        self._loads.forget_group(group)
        return len(keys)

    async def invalidate(self, group: str) -> None:
        """Remove the entries of ``group``, as ``invalidate_group`` does.

        The awaitable form, for callers that may hold a `ReadThroughCache`
        kept elsewhere.
        """
        self.invalidate_group(group)

    def stale_value(
        self, key: Hashable, *, ttl: float, stale_if_error: float
    ) -> CacheResult[object] | None:
        """Return the stored value of ``key`` if it may still serve after an error.

        For a reader that gave up waiting on a load: the value is served as
        ``stale`` when it is younger than ``ttl + stale_if_error``, and as a
        ``hit`` when it is younger than ``ttl``, which happens when the load
        stored it just as the reader's wait ended.
        """
        entry, age = self._lookup(key, ttl + stale_if_error)
        if entry is None:
            return None
        return CacheResult(entry.value, "hit" if age < ttl else "stale", age)

    def clear(self) -> None:
        """Remove every entry and keep the running loads from storing."""
        self._entries.clear()
        self._loads.clear()

    def _lookup(self, key: Hashable, max_age: float) -> tuple[_Entry | None, float]:
        """Return the entry of ``key`` and its age, dropping it if too old to serve."""
        entry = self._entries.get(key)
        if entry is None:
            return None, 0.0

        age = self._clock() - entry.loaded_at
        if age >= max_age:
            del self._entries[key]
            return None, 0.0

        return entry, age

    def _store_loaded(self, key: Hashable, load: Load, value: object) -> None:
        self._entries[key] = _Entry(value, self._clock(), load.group)


def check_durations(ttl: float, stale_if_error: float) -> None:
    """Raise ValueError unless ``ttl`` is > 0 and ``stale_if_error`` is >= 0."""
    # The negated comparisons also reject NaN.
    if not ttl > 0:
        message = f"ttl must be > 0 seconds, got {ttl!r}"
        raise ValueError(message)
    if not stale_if_error >= 0:
        message = f"stale_if_error must be >= 0 seconds, got {stale_if_error!r}"
        raise ValueError(message)
