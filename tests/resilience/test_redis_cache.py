"""RedisReadCache against a real redis-server, with two caches as two instances."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from app.metrics import ProxyMetrics
from app.models import User
from app.resilience.clock import ManualClock
from app.resilience.redis_cache import RedisReadCache
from app.resilience.redis_store import RedisCacheStore, open_redis_client
from app.settings import CacheSettings
from tests.helpers import sample
from tests.redis_server import RedisServer
from tests.resilience.test_cache import Loader

SERVICE = "user-service"
TTL = 30.0
STALE = 60.0
KEY = ("get_user", "1")
ENTRY_KEY = "test:v1:user-service:read:get_user:1"
GENERATION_KEY = "test:v1:user-service:generation:1"
MAX_LOAD_SECONDS = 15.0


def make_user(name: str = "Ada") -> User:
    """Build user 1 with the given first name."""
    return User.model_validate(
        {
            "id": "1",
            "email": "ada@example.com",
            "firstName": name,
            "lastName": "Lovelace",
            "role": "admin",
            "isActive": True,
            "createdAt": "2026-01-01T00:00:00Z",
        }
    )


@dataclass
class Instance:
    """One gateway instance's view of the shared cache."""

    cache: RedisReadCache
    store: RedisCacheStore

    async def read(self, loader: Callable[[], Awaitable[User]], **options: Any) -> Any:
        """Read user 1 through the cache with the test's time to live."""
        return await self.cache.get_or_load(
            KEY,
            loader,
            model=User,
            ttl=options.pop("ttl", TTL),
            stale_if_error=options.pop("stale_if_error", STALE),
            group="1",
            **options,
        )


@pytest.fixture
def clock() -> ManualClock:
    """Give both instances one wall clock that moves only when the test advances it."""
    return ManualClock(start=1_800_000_000.0)


@pytest.fixture
async def instances(
    redis_server: RedisServer, metrics: ProxyMetrics, clock: ManualClock
) -> AsyncIterator[tuple[Instance, Instance]]:
    """Build two instances, each with its own Redis client, on one redis-server."""
    settings = CacheSettings(backend="redis", redis_url=redis_server.url)
    async with AsyncExitStack() as stack:
        built = []
        for _ in range(2):
            opener = asynccontextmanager(open_redis_client)(settings)
            client = await stack.enter_async_context(opener)
            assert client is not None
            built.append(make_instance(client, metrics, clock))
        yield built[0], built[1]


def make_instance(
    client: Redis, metrics: ProxyMetrics, clock: ManualClock, **options: Any
) -> Instance:
    """Build a store and a cache on ``client`` with the key prefix "test:"."""
    store = RedisCacheStore(client, key_prefix="test:", backoff=1.0, metrics=metrics)
    cache = RedisReadCache(
        store,
        service=SERVICE,
        max_entry_bytes=options.get("max_entry_bytes", 10_000),
        max_entry_age=TTL + STALE,
        max_load_seconds=MAX_LOAD_SECONDS,
        clock=clock,
    )
    return Instance(cache, store)


async def stored_document(client: Redis) -> Any:
    """Return the JSON document stored for get_user 1."""
    raw = await client.get(ENTRY_KEY)
    assert raw is not None
    return json.loads(raw)


def invalid_entries(registry: CollectorRegistry) -> float:
    """Read the invalid_entry count of user-service reads."""
    return sample(
        registry,
        "service_cache_backend_errors_total",
        service=SERVICE,
        operation="read",
        reason="invalid_entry",
    )


class TestSharing:
    """Entries stored by one instance serve the other."""

    async def test_other_instance_hits(
        self, instances: tuple[Instance, Instance]
    ) -> None:
        """A value loaded by instance A is a hit on instance B."""
        first, second = instances
        loader = Loader(make_user())

        loaded = await first.read(loader)
        shared = await second.read(loader)

        assert loaded.source == "miss"
        assert shared.source == "hit"
        assert shared.value == make_user()
        assert loader.calls == 1

    async def test_entry_is_json_with_expiry(
        self, instances: tuple[Instance, Instance], redis_client: Redis
    ) -> None:
        """The entry is a JSON document that Redis drops after ttl + stale window."""
        first, _ = instances
        await first.read(Loader(make_user()))

        document = await stored_document(redis_client)
        expiry_ms = await redis_client.pttl(ENTRY_KEY)

        assert document["loaded_at"] == 1_800_000_000.0
        assert document["generation"] == ""
        assert document["value"]["firstName"] == "Ada"
        assert (TTL + STALE - 1) * 1000 < expiry_ms <= (TTL + STALE) * 1000

    async def test_concurrent_reads_share_one_load(
        self, instances: tuple[Instance, Instance], redis_client: Redis
    ) -> None:
        """50 concurrent reads of one key share one Redis read and one load."""
        first, _ = instances
        loader = Loader(make_user())
        loader.hold()

        reads = [asyncio.ensure_future(first.read(loader)) for _ in range(50)]
        await asyncio.sleep(0.05)
        loader.release()
        results = await asyncio.gather(*reads)
        stats = await redis_client.info("commandstats")

        assert loader.calls == 1
        assert {result.source for result in results} == {"miss"}
        assert first.cache.in_flight == 0
        # One read is two GETRANGE commands, the entry's and the generation's.
        assert stats["cmdstat_getrange"]["calls"] == 2
        assert stats["cmdstat_set"]["calls"] == 1

    async def test_expired_entry_is_loaded_again(
        self, instances: tuple[Instance, Instance], clock: ManualClock
    ) -> None:
        """After its time to live an entry is loaded again by any instance."""
        first, second = instances
        loader = Loader(make_user())
        await first.read(loader)
        clock.advance(TTL)

        result = await second.read(loader)

        assert result.source == "miss"
        assert loader.calls == 2


class TestInvalidation:
    """A write through one instance hides the entry from every instance."""

    async def test_invalidation_reaches_other_instance(
        self, instances: tuple[Instance, Instance], redis_client: Redis
    ) -> None:
        """After B invalidates the group, A loads the value again."""
        first, second = instances
        await first.read(Loader(make_user()))

        await second.cache.invalidate("1")
        result = await first.read(Loader(make_user("Grace")))

        assert result.source == "miss"
        assert result.value.first_name == "Grace"
        assert await redis_client.pttl(GENERATION_KEY) > 0

    async def test_load_before_invalidation_is_not_served(
        self, instances: tuple[Instance, Instance]
    ) -> None:
        """A load that started before another instance's write is never served.

        Its value is stored under the old generation, so reads miss it.
        """
        first, second = instances
        slow = Loader(make_user("Old"))
        slow.hold()
        pending = asyncio.ensure_future(first.read(slow))
        await asyncio.sleep(0.05)

        await second.cache.invalidate("1")
        slow.release()
        stale_read = await pending
        fresh = await second.read(Loader(make_user("New")))

        assert stale_read.value.first_name == "Old"
        assert fresh.source == "miss"
        assert fresh.value.first_name == "New"

    async def test_local_invalidation_drops_running_load(
        self, instances: tuple[Instance, Instance], redis_client: Redis
    ) -> None:
        """An invalidation on the loading instance keeps the load from storing."""
        first, _ = instances
        loader = Loader(make_user())
        loader.hold()
        pending = asyncio.ensure_future(first.read(loader))
        await asyncio.sleep(0.05)

        await first.cache.invalidate("1")
        loader.release()
        await pending

        assert await redis_client.exists(ENTRY_KEY) == 0

    async def test_invalidated_stale_value_is_not_served(
        self, instances: tuple[Instance, Instance], clock: ManualClock
    ) -> None:
        """A failing load after an invalidation raises instead of serving stale."""
        first, second = instances
        await first.read(Loader(make_user()))
        clock.advance(TTL)
        failing = Loader(RuntimeError("upstream down"))

        await second.cache.invalidate("1")

        with pytest.raises(RuntimeError):
            await first.read(failing)


class TestStaleIfError:
    """Expired entries in Redis serve when a load fails."""

    async def test_other_instance_serves_stale(
        self, instances: tuple[Instance, Instance], clock: ManualClock
    ) -> None:
        """B serves A's expired entry when its own load fails."""
        first, second = instances
        await first.read(Loader(make_user()))
        clock.advance(TTL + 1)
        failing = Loader(RuntimeError("upstream down"))

        result = await second.read(failing)

        assert result.source == "stale"
        assert result.age == TTL + 1
        assert result.value == make_user()

    async def test_too_old_entry_is_not_served(
        self, instances: tuple[Instance, Instance], clock: ManualClock
    ) -> None:
        """Past ttl + stale_if_error the load's error propagates."""
        first, second = instances
        await first.read(Loader(make_user()))
        clock.advance(TTL + STALE)
        failing = Loader(RuntimeError("upstream down"))

        with pytest.raises(RuntimeError):
            await second.read(failing)

    async def test_serve_stale_false_propagates(
        self, instances: tuple[Instance, Instance], clock: ManualClock
    ) -> None:
        """An error that serve_stale rejects propagates despite an old entry."""
        first, second = instances
        await first.read(Loader(make_user()))
        clock.advance(TTL + 1)
        failing = Loader(LookupError("gone"))

        with pytest.raises(LookupError):
            await second.read(failing, serve_stale=lambda exc: False)

    async def test_stale_value_of_running_load(
        self, instances: tuple[Instance, Instance], clock: ManualClock
    ) -> None:
        """stale_value returns the expired entry that the running load found."""
        first, second = instances
        await first.read(Loader(make_user()))
        clock.advance(TTL + 1)
        slow = Loader(make_user())
        slow.hold()
        pending = asyncio.ensure_future(second.read(slow))
        await asyncio.sleep(0.05)

        stale = second.cache.stale_value(KEY, ttl=TTL, stale_if_error=STALE)
        slow.release()
        await pending

        assert stale is not None
        assert stale.source == "stale"
        assert stale.value == make_user()
        assert second.cache.stale_value(KEY, ttl=TTL, stale_if_error=STALE) is None


class TestGarbage:
    """Whatever else is in Redis reads as a miss and is replaced."""

    @pytest.mark.parametrize(
        "payload",
        [
            b"not json",
            b"\xff\xfe",
            b'{"loaded_at": 1, "generation": "", "value": {"id": "1"}}',
            b'{"loaded_at": 1e999, "generation": "", "value": {}}',
            b"[1, 2, 3]",
        ],
    )
    async def test_garbage_entry_is_a_miss(
        self,
        instances: tuple[Instance, Instance],
        redis_client: Redis,
        registry: CollectorRegistry,
        payload: bytes,
    ) -> None:
        """An entry that does not validate is counted, loaded and overwritten."""
        first, _ = instances
        await redis_client.set(ENTRY_KEY, payload)
        loader = Loader(make_user())

        result = await first.read(loader)
        stored = await stored_document(redis_client)

        assert result.source == "miss"
        assert loader.calls == 1
        assert invalid_entries(registry) == 1
        assert stored["value"]["firstName"] == "Ada"

    async def test_entry_loaded_in_the_future_is_a_miss(
        self,
        instances: tuple[Instance, Instance],
        redis_client: Redis,
        registry: CollectorRegistry,
    ) -> None:
        """A load time beyond the clock would stay fresh forever, so it is refused."""
        first, second = instances
        await first.read(Loader(make_user()))
        document = await stored_document(redis_client)
        document["loaded_at"] = 1e308
        await redis_client.set(ENTRY_KEY, json.dumps(document))
        loader = Loader(make_user("Grace"))

        result = await second.read(loader)

        assert result.source == "miss"
        assert loader.calls == 1
        assert invalid_entries(registry) == 1

    async def test_oversized_entry_is_a_miss(
        self,
        redis_client: Redis,
        metrics: ProxyMetrics,
        registry: CollectorRegistry,
        clock: ManualClock,
    ) -> None:
        """An entry longer than max_entry_bytes is not decoded."""
        instance = make_instance(redis_client, metrics, clock, max_entry_bytes=100)
        await redis_client.set(ENTRY_KEY, b" " * 500)

        result = await instance.read(Loader(make_user()))

        assert result.source == "miss"
        assert invalid_entries(registry) == 1

    async def test_value_over_limit_is_not_stored(
        self, redis_client: Redis, metrics: ProxyMetrics, clock: ManualClock
    ) -> None:
        """A value whose JSON exceeds max_entry_bytes stays out of Redis."""
        instance = make_instance(redis_client, metrics, clock, max_entry_bytes=50)

        result = await instance.read(Loader(make_user()))

        assert result.source == "miss"
        assert await redis_client.exists(ENTRY_KEY) == 0


class TestRedisFailure:
    """A failing Redis means no caching, never a failed read."""

    async def test_stopped_redis_reads_through(
        self, instances: tuple[Instance, Instance], redis_server: RedisServer
    ) -> None:
        """With Redis stopped every read calls the loader and succeeds."""
        first, _ = instances
        loader = Loader(make_user())
        await first.read(loader)
        redis_server.stop()

        results = [await first.read(loader) for _ in range(3)]

        assert [result.source for result in results] == ["miss"] * 3
        assert loader.calls == 4

    async def test_paused_redis_costs_little(
        self, instances: tuple[Instance, Instance], redis_server: RedisServer
    ) -> None:
        """A Redis that never responds delays a read by about one socket timeout."""
        first, _ = instances
        await first.read(Loader(make_user()))
        redis_server.pause()
        try:
            started = time.perf_counter()
            result = await first.read(Loader(make_user()))
            elapsed = time.perf_counter() - started
        finally:
            redis_server.resume()

        assert result.source == "miss"
        assert elapsed < 1.0

    async def test_slow_load_is_not_stored(
        self,
        instances: tuple[Instance, Instance],
        redis_client: Redis,
        clock: ManualClock,
    ) -> None:
        """A load longer than max_load_seconds is returned but not stored."""
        first, _ = instances

        async def slow_loader() -> User:
            clock.advance(MAX_LOAD_SECONDS + 1)
            return make_user()

        result = await first.read(slow_loader)

        assert result.source == "miss"
        assert await redis_client.exists(ENTRY_KEY) == 0
