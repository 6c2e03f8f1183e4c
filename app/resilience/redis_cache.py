"""RedisReadCache: a read cache kept in Redis and shared by every instance."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.resilience.cache import (
    CacheResult,
    CacheSource,
    Load,
    LoadCoalescer,
    check_durations,
)
from app.resilience.clock import Clock
from app.resilience.redis_store import RedisCacheStore

__all__ = ["RedisReadCache"]

T = TypeVar("T")

# Seconds by which the clocks of two instances sharing Redis may disagree.
_CLOCK_SKEW = 5.0


class _StoredEntry(BaseModel, Generic[T]):
    """The JSON document stored under an entry key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    loaded_at: float = Field(allow_inf_nan=False)
    """Wall-clock time of the load, in seconds since the epoch."""
    generation: str = Field(max_length=64)
    """Generation of the group when the load started."""
    value: T


@dataclass(eq=False, slots=True)
class _SharedLoad(Load):
    """A running read of Redis, then of the loader, and what storing needs."""

    model: type[Any]
    ttl: float
    max_age: float
    generation: str | None = None
    """Generation read before the load, or None when Redis failed: not stored."""
    started_at: float = 0.0
    """Wall-clock time at which the read of Redis started."""
    fallback: _StoredEntry[Any] | None = None
    """An expired entry that may serve as stale if the load fails."""
    invalidated: bool = False


@dataclass(frozen=True, slots=True)
class _Outcome:
    value: object
    source: CacheSource
    age: float


class RedisReadCache:
    """Cache the results of async reads in Redis, shared by every gateway instance.

    It has the behaviour of `ReadCache`: concurrent reads of one key in this
    process share one loader call, and a failed load may serve a stale entry.
    Entries are JSON documents holding the value, the wall-clock time of its
    load and the generation of its group, validated into ``model`` on every read.
    A document that does not validate counts as ``invalid_entry`` and reads as
    empty. Redis expires an entry ``ttl + stale_if_error`` seconds after it is
    stored.

    ``invalidate`` stores a new random generation token for the group, and an
    entry serves only while its generation is the group's current one. So a
    write through any instance hides the group's entries from every instance,
    including the entry of a load that started before the write and ends after
    it. A generation key expires ``max_entry_age + max_load_seconds`` after the
    write, when no entry loaded before the write can be left: the value of a
    load that took longer than ``max_load_seconds`` is not stored.

    Every Redis failure reads as a miss and skips the store, so the calls go to
    the service; see `RedisCacheStore` for the back-off.
    """

    def __init__(
        self,
        store: RedisCacheStore,
        *,
        service: str,
        max_entry_bytes: int,
        max_entry_age: float,
        max_load_seconds: float,
        clock: Clock = time.time,
    ) -> None:
        if max_entry_bytes < 1:
            message = f"max_entry_bytes must be >= 1, got {max_entry_bytes!r}"
            raise ValueError(message)
        if not (max_entry_age > 0 and max_load_seconds > 0):
            message = (
                f"max_entry_age and max_load_seconds must be > 0 seconds, got "
                f"{max_entry_age!r} and {max_load_seconds!r}"
            )
            raise ValueError(message)
        self._store = store
        self._service = service
        self._max_entry_bytes = max_entry_bytes
        self._max_entry_age = max_entry_age
        self._max_load_seconds = max_load_seconds
        self._generation_ttl = max_entry_age + max_load_seconds
        self._clock = clock
        self._loads: LoadCoalescer[_SharedLoad] = LoadCoalescer(self._store_loaded)

    @property
    def in_flight(self) -> int:
        """Number of Redis reads and loader calls running now, invalidated or not."""
        return len(self._loads)

    async def get_or_load(
        self,
        key: tuple[str, str],
        loader: Callable[[], Awaitable[T]],
        *,
        model: type[T],
        ttl: float,
        stale_if_error: float = 0.0,
        group: str,
        serve_stale: Callable[[BaseException], bool] = lambda exc: True,
    ) -> CacheResult[T]:
        """Read ``key``, an operation and an id, through Redis.

        As `ReadCache.get_or_load`, with ``model`` the type of the values.
        Concurrent reads of ``key`` in this process share one Redis read and,
        on a miss, one loader call, both made with the ``ttl`` of the first.

        Raises:
            ValueError: ``ttl`` is not > 0 or ``stale_if_error`` is not >= 0.
        """
        check_durations(ttl, stale_if_error)

        max_age = ttl + stale_if_error
        load = self._loads.get(key)
        if load is None:
            shared = _SharedLoad(group, model, ttl, max_age)
            load = self._loads.start(
                key, lambda: self._read_or_load(key, loader, shared), shared
            )

        try:
            # The shield keeps one reader's cancellation from cancelling the load
            # that other readers wait for.
            outcome = cast(_Outcome, await asyncio.shield(load.task))
        except Exception as exc:
            stale = self._stale(load, max_age)
            if stale is None or not serve_stale(exc):
                raise
            return cast(CacheResult[T], stale)

        return CacheResult(cast(T, outcome.value), outcome.source, outcome.age)

    def stale_value(
        self, key: tuple[str, str], *, ttl: float, stale_if_error: float
    ) -> CacheResult[object] | None:
        """Return the expired entry of ``key`` that its running load found.

        For a reader that gave up waiting on a load: no Redis round trip, since
        its deadline has passed.
        """
        load = self._loads.get(key)
        if load is None:
            return None
        return self._stale(load, ttl + stale_if_error)

    async def invalidate(self, group: str) -> None:
        """Hide the entries of ``group`` from every instance.

        Running loads of the group in this process are not stored and serve no
        stale value. When Redis fails, the entries of other instances stay
        until they expire; the failure is counted and logged.
        """
        for load in self._loads.forget_group(group):
            load.invalidated = True
        await self._store.invalidate(
            self._service,
            self._store.generation_key(self._service, group),
            secrets.token_hex(16),
            self._generation_ttl,
        )

    async def _read_or_load(
        self,
        key: tuple[str, str],
        loader: Callable[[], Awaitable[object]],
        load: _SharedLoad,
    ) -> _Outcome:
        """Return the fresh entry of ``key`` in Redis, or else the loader's value."""
        # Before the read of the generation, which the time limit on storing
        # is measured from.
        load.started_at = self._clock()
        generation, entry = await self._read(key, cast(str, load.group), load.model)
        age = self._age(entry)
        if entry is not None and age < load.ttl:
            return _Outcome(entry.value, "hit", age)

        load.generation = generation
        load.fallback = entry if age < load.max_age else None
        return _Outcome(await loader(), "miss", 0.0)

    async def _read(
        self, key: tuple[str, str], group: str, model: type[Any]
    ) -> tuple[str | None, _StoredEntry[Any] | None]:
        """Return the group's generation and the entry of ``key`` if current.

        The generation is None when Redis was skipped or failed.
        """
        operation, item_id = key
        found = await self._store.read(
            self._service,
            self._store.entry_key(self._service, operation, item_id),
            self._store.generation_key(self._service, group),
            max_bytes=self._max_entry_bytes,
        )
        if found is None:
            return None, None
        if found.entry is None:
            return found.generation, None

        entry = self._decode(found.entry, model)
        if entry is None or entry.generation != found.generation:
            return found.generation, None
        return found.generation, entry

    def _decode(self, raw: bytes, model: type[Any]) -> _StoredEntry[Any] | None:
        if len(raw) > self._max_entry_bytes:
            self._store.record_invalid_entry(
                self._service, "read", "an oversized entry"
            )
            return None
        try:
            entry = _StoredEntry[model].model_validate_json(raw)  # type: ignore[valid-type]
        except ValidationError:
            self._store.record_invalid_entry(self._service, "read", "an entry")
            return None
        if entry.loaded_at > self._clock() + _CLOCK_SKEW:
            # A load time in the future would keep the entry fresh for as long
            # as Redis keeps it, and no instance of ours writes one.
            self._store.record_invalid_entry(
                self._service, "read", "an entry loaded in the future"
            )
            return None
        return entry

    async def _store_loaded(
        self, key: Hashable, load: _SharedLoad, outcome: object
    ) -> None:
        """Store a loaded value in Redis, unless storing it could break invalidation."""
        result = cast(_Outcome, outcome)
        if result.source != "miss" or load.generation is None:
            return
        now = self._clock()
        if now - load.started_at > self._max_load_seconds:
            return

        try:
            entry = _StoredEntry[load.model](  # type: ignore[name-defined]
                loaded_at=now, generation=load.generation, value=result.value
            )
            payload = entry.model_dump_json().encode()
        except ValueError as exc:
            # pydantic's validation and serialization errors are ValueErrors.
            logger.bind(service=self._service).error(
                "cannot encode a cached value for Redis: {error}",
                error=type(exc).__name__,
            )
            return
        if len(payload) > self._max_entry_bytes:
            return

        operation, item_id = cast(tuple[str, str], key)
        await self._store.write(
            self._service,
            self._store.entry_key(self._service, operation, item_id),
            payload,
            min(load.max_age, self._max_entry_age),
        )

    def _stale(self, load: _SharedLoad, max_age: float) -> CacheResult[object] | None:
        entry = load.fallback
        if entry is None or load.invalidated:
            return None
        age = self._age(entry)
        if age >= max_age:
            return None
        return CacheResult(entry.value, "stale", age)

    def _age(self, entry: _StoredEntry[Any] | None) -> float:
        """Return the seconds since ``entry`` was loaded, 0.0 without an entry.

        Clocks of instances may differ a little, so an entry loaded "in the
        future" is 0 seconds old.
        """
        if entry is None:
            return 0.0
        return max(0.0, self._clock() - entry.loaded_at)
