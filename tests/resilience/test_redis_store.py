"""RedisCacheStore against a real redis-server: reads, writes, back-off and logs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from loguru import logger
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from app.metrics import ProxyMetrics
from app.resilience.clock import ManualClock
from app.resilience.redis_store import (
    KEY_FORMAT_VERSION,
    LOG_INTERVAL,
    RedisCacheStore,
    StoredRead,
    open_redis_client,
)
from app.settings import CacheSettings
from tests.helpers import free_port, sample
from tests.redis_server import RedisServer

SERVICE = "user-service"
BACKOFF = 1.0
ENTRY = "test:v1:user-service:read:get_user:1"
GENERATION = "test:v1:user-service:generation:1"


@pytest.fixture
def clock() -> ManualClock:
    """Give the store a clock that moves only when the test advances it."""
    return ManualClock()


@pytest.fixture
def store(
    redis_client: Redis, metrics: ProxyMetrics, clock: ManualClock
) -> RedisCacheStore:
    """Build a store on the test's redis-server with the key prefix "test:"."""
    return RedisCacheStore(
        redis_client, key_prefix="test:", backoff=BACKOFF, metrics=metrics, clock=clock
    )


@pytest.fixture
def log_messages() -> Iterator[list[str]]:
    """Collect the message of every log line at INFO or above."""
    lines: list[str] = []
    sink_id = logger.add(
        lambda message: lines.append(message.record["message"]), level="INFO"
    )
    yield lines
    logger.remove(sink_id)


def errors(registry: CollectorRegistry, operation: str, reason: str) -> float:
    """Read service_cache_backend_errors_total of user-service."""
    return sample(
        registry,
        "service_cache_backend_errors_total",
        service=SERVICE,
        operation=operation,
        reason=reason,
    )


async def read(store: RedisCacheStore) -> StoredRead | None:
    """Read the entry of get_user 1 with a bound of 1000 bytes."""
    return await store.read(SERVICE, ENTRY, GENERATION, max_bytes=1000)


class TestKeys:
    """Key layout."""

    def test_keys_carry_prefix_version_service_and_id(
        self, store: RedisCacheStore
    ) -> None:
        """Entry and generation keys differ in their kind and end with the id."""
        entry = store.entry_key(SERVICE, "get_user", "a:b")
        generation = store.generation_key(SERVICE, "a:b")

        assert entry == f"test:{KEY_FORMAT_VERSION}:user-service:read:get_user:a:b"
        assert generation == f"test:{KEY_FORMAT_VERSION}:user-service:generation:a:b"


class TestReadWrite:
    """Round trips through a running Redis."""

    async def test_missing_keys_read_empty(self, store: RedisCacheStore) -> None:
        """No entry and no generation read as None and ""."""
        assert await read(store) == StoredRead("", None)

    async def test_written_entry_reads_back_with_expiry(
        self, store: RedisCacheStore, redis_client: Redis
    ) -> None:
        """A written entry reads back and expires after its time to live."""
        await store.write(SERVICE, ENTRY, b"payload", 2.5)

        found = await read(store)
        expiry_ms = await redis_client.pttl(ENTRY)

        assert found == StoredRead("", b"payload")
        assert 2000 < expiry_ms <= 2500

    async def test_read_is_bounded(self, store: RedisCacheStore) -> None:
        """At most max_bytes + 1 bytes of an entry are read."""
        await store.write(SERVICE, ENTRY, b"x" * 5000, 10)

        found = await read(store)

        assert found is not None
        assert found.entry == b"x" * 1001

    async def test_invalidate_stores_generation(
        self, store: RedisCacheStore, redis_client: Redis
    ) -> None:
        """An invalidation stores its token with an expiry."""
        stored = await store.invalidate(SERVICE, GENERATION, "abc123", 60)

        found = await read(store)
        expiry_ms = await redis_client.pttl(GENERATION)

        assert stored
        assert found == StoredRead("abc123", None)
        assert 59000 < expiry_ms <= 60000


class TestInvalidContent:
    """Keys that hold something this cache did not write."""

    @pytest.mark.parametrize("token", [b"not a token!", b"x" * 65])
    async def test_foreign_generation_reads_as_none(
        self,
        store: RedisCacheStore,
        redis_client: Redis,
        registry: CollectorRegistry,
        token: bytes,
    ) -> None:
        """A generation that is not 1 to 64 letters or digits is counted."""
        await redis_client.set(GENERATION, token)

        assert await read(store) is None
        assert errors(registry, "read", "invalid_entry") == 1

    async def test_generation_of_wrong_type_reads_as_none(
        self,
        store: RedisCacheStore,
        redis_client: Redis,
        registry: CollectorRegistry,
    ) -> None:
        """A list at the generation key is counted and not used."""
        await redis_client.rpush(GENERATION, "a")

        assert await read(store) is None
        assert errors(registry, "read", "invalid_entry") == 1

    async def test_entry_of_wrong_type_reads_empty(
        self,
        store: RedisCacheStore,
        redis_client: Redis,
        registry: CollectorRegistry,
    ) -> None:
        """A hash at the entry key reads as no entry, and a write replaces it."""
        await redis_client.hset(ENTRY, "field", "value")

        found = await read(store)
        await store.write(SERVICE, ENTRY, b"payload", 10)

        assert found == StoredRead("", None)
        assert errors(registry, "read", "invalid_entry") == 1
        assert await redis_client.get(ENTRY) == b"payload"


class TestBackoff:
    """A failing Redis is skipped for a while instead of being called again."""

    async def test_failure_reads_none_and_counts(
        self,
        store: RedisCacheStore,
        redis_server: RedisServer,
        registry: CollectorRegistry,
    ) -> None:
        """A stopped Redis reads as None and counts a connection error."""
        redis_server.stop()

        assert await read(store) is None
        assert errors(registry, "read", "connection") == 1
        assert store.backing_off

    async def test_backoff_skips_reads_and_writes(
        self,
        store: RedisCacheStore,
        redis_server: RedisServer,
        registry: CollectorRegistry,
    ) -> None:
        """During the back-off no command is sent; skipped ones are counted."""
        redis_server.stop()
        await read(store)

        await read(store)
        await store.write(SERVICE, ENTRY, b"payload", 10)

        assert errors(registry, "read", "connection") == 1
        assert errors(registry, "read", "backoff") == 1
        assert errors(registry, "write", "backoff") == 1

    async def test_probe_after_backoff_recovers(
        self,
        store: RedisCacheStore,
        redis_server: RedisServer,
        clock: ManualClock,
        log_messages: list[str],
    ) -> None:
        """After the back-off one read probes Redis and ends it when Redis responds."""
        redis_server.stop()
        await read(store)
        redis_server.start()
        clock.advance(BACKOFF)

        found = await read(store)

        assert found == StoredRead("", None)
        assert not store.backing_off
        assert "Redis cache is reachable again" in log_messages

    async def test_failed_probe_extends_backoff(
        self,
        store: RedisCacheStore,
        redis_server: RedisServer,
        clock: ManualClock,
        registry: CollectorRegistry,
    ) -> None:
        """A probe that fails starts a new back-off period."""
        redis_server.stop()
        await read(store)
        clock.advance(BACKOFF)

        await read(store)
        await read(store)

        assert errors(registry, "read", "connection") == 2
        assert errors(registry, "read", "backoff") == 1

    async def test_invalidate_is_sent_during_backoff(
        self,
        store: RedisCacheStore,
        redis_server: RedisServer,
        redis_client: Redis,
    ) -> None:
        """An invalidation reaches a Redis that is back before the back-off ends."""
        redis_server.stop()
        await read(store)
        redis_server.start()

        stored = await store.invalidate(SERVICE, GENERATION, "abc", 60)

        assert stored
        assert await redis_client.get(GENERATION) == b"abc"
        assert not store.backing_off

    async def test_paused_redis_times_out_quickly(
        self,
        store: RedisCacheStore,
        redis_server: RedisServer,
        registry: CollectorRegistry,
    ) -> None:
        """A Redis that accepts but never responds costs about one socket timeout."""
        await read(store)
        redis_server.pause()
        try:
            started = time.perf_counter()
            found = await read(store)
            elapsed = time.perf_counter() - started
        finally:
            redis_server.resume()

        assert found is None
        assert elapsed < 1.0
        assert errors(registry, "read", "timeout") == 1


class TestLogging:
    """Failure warnings are rate-limited."""

    async def test_failure_warning_is_rate_limited(
        self,
        store: RedisCacheStore,
        redis_server: RedisServer,
        clock: ManualClock,
        log_messages: list[str],
    ) -> None:
        """Failures within LOG_INTERVAL log once; the next line counts the rest."""
        redis_server.stop()
        for _ in range(3):
            await store.invalidate(SERVICE, GENERATION, "abc", 60)
        clock.advance(LOG_INTERVAL)
        await store.invalidate(SERVICE, GENERATION, "abc", 60)

        failures = [line for line in log_messages if "failed" in line]
        assert len(failures) == 2
        assert "ConnectionError" in failures[0]
        assert "2 more since the last such warning" in failures[1]


class TestOpenClient:
    """open_redis_client, the container's resource."""

    async def test_memory_backend_yields_none(self) -> None:
        """The memory backend opens no client."""
        opener = asynccontextmanager(open_redis_client)

        async with opener(CacheSettings()) as client:
            assert client is None

    async def test_unreachable_redis_logs_without_password(
        self, log_messages: list[str]
    ) -> None:
        """A Redis that does not respond at start-up is logged, password hidden."""
        url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
        settings = CacheSettings(backend="redis", redis_url=url)

        async with open_client(settings) as client:
            assert client is not None

        assert any("did not respond to PING" in line for line in log_messages)
        assert all("hunter2" not in line for line in log_messages)

    async def test_client_closes_at_shutdown(self, redis_server: RedisServer) -> None:
        """The client responds while open, and its connections close afterwards."""
        settings = CacheSettings(backend="redis", redis_url=redis_server.url)

        async with open_client(settings) as client:
            assert client is not None
            responded = await client.ping()

        observer = Redis.from_url(redis_server.url)
        try:
            clients = await observer.info("clients")
        finally:
            await observer.aclose()

        assert responded
        # Only the observer itself is still connected.
        assert clients["connected_clients"] == 1


@asynccontextmanager
async def open_client(settings: CacheSettings) -> AsyncIterator[Redis | None]:
    """Run open_redis_client as the container does."""
    async with asynccontextmanager(open_redis_client)(settings) as client:
        yield client
