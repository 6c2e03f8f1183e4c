"""RedisCacheStore: the Redis side of the shared read cache, with a back-off."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from loguru import logger
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.metrics import ProxyMetrics
from app.resilience.clock import Clock, monotonic
from app.settings import CacheSettings

__all__ = [
    "KEY_FORMAT_VERSION",
    "LOG_INTERVAL",
    "MAX_GENERATION_BYTES",
    "RedisCacheStore",
    "StoredRead",
    "build_cache_store",
    "open_redis_client",
]

# Part of every key, so that a release that changes the stored format starts
# with an empty cache instead of reading entries it cannot decode.
KEY_FORMAT_VERSION = "v1"
# Seconds between two warnings about one kind of problem; the occurrences in
# between are counted in the next warning.
LOG_INTERVAL = 30.0
# Generation tokens are 32 hex digits; a longer value is not one of ours.
MAX_GENERATION_BYTES = 64
# Characters of a Redis error message that a log line keeps.
_MAX_ERROR_TEXT = 200

Operation = Literal["read", "write", "invalidate"]


@dataclass(frozen=True, slots=True)
class StoredRead:
    """Result of one read of an entry key and its group's generation key."""

    generation: str
    """Token of the group's last invalidation, or "" when none is stored."""
    entry: bytes | None
    """The entry's first ``max_bytes + 1`` bytes, or None when the key is empty."""


class _RateLimitedWarning:
    """A warning logged at most once per LOG_INTERVAL, counting the ones left out."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._logged_at = -math.inf
        self._left_out = 0

    def warn(self, service: str, message: str, **fields: object) -> None:
        now = self._clock()
        if now - self._logged_at < LOG_INTERVAL:
            self._left_out += 1
            return
        if self._left_out:
            message += " ({left_out} more since the last such warning)"
        logger.bind(service=service).warning(message, left_out=self._left_out, **fields)
        self._logged_at = now
        self._left_out = 0


class RedisCacheStore:
    """Read and write cache entries in Redis, never raising for a failing Redis.

    A failed operation returns as if Redis held nothing, counts in
    ``service_cache_backend_errors_total`` and starts a back-off: for ``backoff``
    seconds reads and writes skip Redis, so that a dead or slow Redis costs a
    call nothing. After the back-off one read or write probes Redis while the
    others still skip it. Invalidations are always sent, because a skipped one
    would leave other instances serving the value from before a write.
    """

    def __init__(
        self,
        client: Redis,
        *,
        key_prefix: str,
        backoff: float,
        metrics: ProxyMetrics,
        clock: Clock = monotonic,
    ) -> None:
        if not backoff > 0:
            message = f"backoff must be > 0 seconds, got {backoff!r}"
            raise ValueError(message)
        self._client = client
        self._prefix = f"{key_prefix}{KEY_FORMAT_VERSION}:"
        self._backoff = backoff
        self._errors = metrics.cache_backend_errors
        self._clock = clock
        self._failing = False
        self._retry_at = 0.0
        self._failure_warning = _RateLimitedWarning(clock)
        self._invalid_warning = _RateLimitedWarning(clock)

    @property
    def client(self) -> Redis:
        """The Redis client, owned by the container's ``redis_client`` resource."""
        return self._client

    @property
    def backing_off(self) -> bool:
        """Whether a recent failure makes reads and writes skip Redis now."""
        return self._failing and self._clock() < self._retry_at

    def entry_key(self, service: str, operation: str, item_id: str) -> str:
        """Return the key of one read's entry."""
        return f"{self._prefix}{service}:read:{operation}:{item_id}"

    def generation_key(self, service: str, group: str) -> str:
        """Return the key that stores a group's generation token."""
        return f"{self._prefix}{service}:generation:{group}"

    async def read(
        self, service: str, entry_key: str, generation_key: str, *, max_bytes: int
    ) -> StoredRead | None:
        """Read an entry and its group's generation in one round trip.

        Returns None when Redis is skipped or fails, or when the generation key
        contains something that no invalidation wrote.
        """
        if not self._admit(service, "read"):
            return None
        try:
            # GETRANGE bounds the bytes read, and returns b"" for a missing key.
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.getrange(generation_key, 0, MAX_GENERATION_BYTES)
                pipe.getrange(entry_key, 0, max_bytes)
                generation, entry = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError) as exc:
            self._record_failure(service, "read", exc)
            return None
        self._record_success()

        token = _decode_generation(generation)
        if token is None:
            self.record_invalid_entry(service, "read", "a generation key")
            return None
        if isinstance(entry, Exception):
            # WRONGTYPE: the entry key is a list, set or hash, which the next
            # write replaces.
            self.record_invalid_entry(service, "read", "an entry key")
            return StoredRead(token, None)
        return StoredRead(token, bytes(entry) or None)

    async def write(self, service: str, key: str, payload: bytes, ttl: float) -> None:
        """Set ``key`` to ``payload`` for ``ttl`` seconds, unless Redis is skipped.

        Failures are counted and logged, not raised.
        """
        if not self._admit(service, "write"):
            return
        try:
            await self._client.set(key, payload, px=_milliseconds(ttl))
        except (RedisError, OSError) as exc:
            self._record_failure(service, "write", exc)
            return
        self._record_success()

    async def invalidate(
        self, service: str, generation_key: str, token: str, ttl: float
    ) -> bool:
        """Store a new generation token for ``ttl`` seconds; tell whether it was."""
        try:
            await self._client.set(generation_key, token, px=_milliseconds(ttl))
        except (RedisError, OSError) as exc:
            self._record_failure(service, "invalidate", exc)
            return False
        self._record_success()
        return True

    def record_invalid_entry(
        self, service: str, operation: Operation, what: str
    ) -> None:
        """Count and log a value in Redis that is not one this cache wrote."""
        self._errors.labels(service, operation, "invalid_entry").inc()
        self._invalid_warning.warn(
            service,
            "Redis cache {operation} found {what} it cannot decode; "
            "it is treated as empty",
            operation=operation,
            what=what,
        )

    def _admit(self, service: str, operation: Operation) -> bool:
        """Tell whether an operation may use Redis, counting it when skipped."""
        if not self._failing:
            return True
        now = self._clock()
        if now < self._retry_at:
            self._errors.labels(service, operation, "backoff").inc()
            return False
        # This operation probes Redis; the others skip it until the probe ends.
        self._retry_at = now + self._backoff
        return True

    def _record_failure(
        self, service: str, operation: Operation, exc: BaseException
    ) -> None:
        reason = _failure_reason(exc)
        self._errors.labels(service, operation, reason).inc()
        self._failing = True
        self._retry_at = self._clock() + self._backoff
        self._failure_warning.warn(
            service,
            "Redis cache {operation} failed: {error}: {detail}; reads and writes "
            "skip Redis for {backoff} s",
            operation=operation,
            error=type(exc).__name__,
            detail=str(exc)[:_MAX_ERROR_TEXT],
            backoff=self._backoff,
        )

    def _record_success(self) -> None:
        if self._failing:
            self._failing = False
            logger.info("Redis cache is reachable again")


def _failure_reason(exc: BaseException) -> str:
    """Return the bounded metric label of a Redis failure."""
    if isinstance(exc, RedisTimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, RedisConnectionError | OSError):
        return "connection"
    return "error"


def _decode_generation(value: object) -> str | None:
    """Return the generation token in a GETRANGE result, or None if not one."""
    if not isinstance(value, bytes) or len(value) > MAX_GENERATION_BYTES:
        return None
    if value and not (value.isascii() and value.isalnum()):
        return None
    return value.decode("ascii")


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


async def open_redis_client(settings: CacheSettings) -> AsyncIterator[Redis | None]:
    """Open the Redis client when the cache backend is redis, and close it at shutdown.

    Yields None for the memory backend. Redis need not be up: a failed first
    PING is logged, and the cache works without Redis until Redis responds.
    """
    if settings.backend != "redis":
        yield None
        return

    location = settings.redis_url_for_logs()
    pool = BlockingConnectionPool.from_url(
        settings.redis_url.get_secret_value(),
        max_connections=settings.redis_max_connections,
        # Seconds a command waits for a free connection of the pool.
        timeout=settings.redis_socket_timeout,
        socket_timeout=settings.redis_socket_timeout,
        socket_connect_timeout=settings.redis_connect_timeout,
        # Some redis-py versions retry a failed command by default (8.2's Redis()
        # up to 10 times); the back-off of RedisCacheStore replaces retries.
        retry=Retry(NoBackoff(), 0),
    )
    client = Redis.from_pool(pool)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        logger.warning(
            "Redis cache at {location} did not respond to PING ({error}); reads "
            "go to the services until it does",
            location=location,
            error=type(exc).__name__,
        )
    else:
        logger.info("Redis cache at {location} is reachable", location=location)
    try:
        yield client
    finally:
        await client.aclose()
        logger.debug("Redis client closed")


def build_cache_store(
    client: Redis | None, settings: CacheSettings, metrics: ProxyMetrics
) -> RedisCacheStore | None:
    """Wrap the container's Redis client in a store, or return None without one."""
    if client is None:
        return None
    return RedisCacheStore(
        client,
        key_prefix=settings.redis_key_prefix,
        backoff=settings.redis_backoff,
        metrics=metrics,
    )
