"""Proxies caching in Redis: two containers on one Redis act as two instances."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from dependency_injector import providers
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from app.containers import Container, resolve, running_container
from app.proxies import UserServiceProxy
from app.settings import CacheSettings, Settings
from app.testing import Reply, ScriptedUpstream
from tests.helpers import sample, service_settings
from tests.redis_server import RedisServer

PREFIX = "shared-test:"
ENTRY_KEY = f"{PREFIX}v1:user-service:read:get_user:1"
PROFILE_JSON: dict[str, Any] = {
    "userId": "1",
    "bio": "b",
    "company": "c",
    "position": "p",
    "timezone": "UTC",
    "avatarUrl": None,
    "updatedAt": "2026-01-01T00:00:00Z",
}


def user_json(first_name: str) -> dict[str, Any]:
    """Return the wire form of user 1 with the given first name."""
    return {
        "id": "1",
        "email": "ada@example.com",
        "firstName": first_name,
        "lastName": "Lovelace",
        "role": "admin",
        "isActive": True,
        "createdAt": "2026-01-01T00:00:00Z",
    }


def shared_settings(upstream_url: str, redis_url: str) -> Settings:
    """Point both services at the upstream and cache get_user in Redis."""
    return Settings(
        user_service=service_settings(
            upstream_url, cache_ttl={"get_user": 30.0}, breaker_enabled=False
        ),
        interview_service=service_settings(upstream_url),
        cache=CacheSettings(
            backend="redis", redis_url=redis_url, redis_key_prefix=PREFIX
        ),
    )


@pytest.fixture
async def instances(
    upstream: ScriptedUpstream, redis_server: RedisServer
) -> AsyncIterator[tuple[Container, Container]]:
    """Run two containers with the same settings, as two gateway instances."""
    settings = shared_settings(upstream.url, redis_server.url)
    async with AsyncExitStack() as stack:
        running = []
        for _ in range(2):
            container = Container()
            container.settings.override(providers.Object(settings))
            running.append(
                await stack.enter_async_context(running_container(container))
            )
        yield running[0], running[1]


async def users_of(
    instances: tuple[Container, Container],
) -> tuple[UserServiceProxy, UserServiceProxy]:
    """Return the user-service proxy of each instance."""
    first, second = instances
    return await resolve(first.user_service), await resolve(second.user_service)


def cache_results(container: Container, result: str) -> float:
    """Read service_cache_requests_total of user-service in one instance."""
    registry: CollectorRegistry = container.metrics_registry()
    return sample(
        registry, "service_cache_requests_total", service="user-service", result=result
    )


class TestSharedCache:
    """Cached reads, writes and failures across two instances."""

    async def test_read_is_shared(
        self, instances: tuple[Container, Container], upstream: ScriptedUpstream
    ) -> None:
        """A user loaded through instance A is served to instance B from Redis."""
        upstream.route("/users/1", Reply.json(user_json("Ada")))
        first, second = await users_of(instances)

        loaded = await first.get_user("1")
        shared = await second.get_user("1")

        assert upstream.hits_for("/users/1") == 1
        assert shared == loaded
        assert cache_results(instances[1], "hit") == 1

    async def test_write_invalidates_other_instance(
        self, instances: tuple[Container, Container], upstream: ScriptedUpstream
    ) -> None:
        """A profile update through A makes B load the user again."""
        upstream.route("/users/1", Reply.json(user_json("Ada")))
        upstream.route("/users/1/profile", Reply.json(PROFILE_JSON))
        first, second = await users_of(instances)
        await second.get_user("1")
        upstream.route("/users/1", Reply.json(user_json("Grace")))

        await first.update_user_profile("1", {"bio": "new"})
        after = await second.get_user("1")

        assert upstream.hits_for("/users/1") == 2
        assert after.first_name == "Grace"

    async def test_stopped_redis_goes_upstream(
        self,
        instances: tuple[Container, Container],
        upstream: ScriptedUpstream,
        redis_server: RedisServer,
    ) -> None:
        """With Redis stopped mid-run, reads still succeed, each one upstream."""
        upstream.route("/users/1", Reply.json(user_json("Ada")))
        first, second = await users_of(instances)
        await first.get_user("1")
        await second.get_user("1")

        redis_server.stop()
        users = [await proxy.get_user("1") for proxy in (first, second, first)]

        assert [user.first_name for user in users] == ["Ada"] * 3
        assert upstream.hits_for("/users/1") == 4
        registry: CollectorRegistry = instances[0].metrics_registry()
        failures = sample(
            registry,
            "service_cache_backend_errors_total",
            service="user-service",
            operation="read",
            reason="connection",
        )
        assert failures == 1

    async def test_garbage_entry_is_a_miss(
        self,
        instances: tuple[Container, Container],
        upstream: ScriptedUpstream,
        redis_server: RedisServer,
    ) -> None:
        """Garbage under the entry key is loaded again and replaced."""
        upstream.route("/users/1", Reply.json(user_json("Ada")))
        first, second = await users_of(instances)
        client = Redis.from_url(redis_server.url)
        try:
            await client.set(ENTRY_KEY, b"\x80\x04garbage")
            loaded = await first.get_user("1")
            shared = await second.get_user("1")
        finally:
            await client.aclose()

        assert loaded.first_name == "Ada"
        assert shared == loaded
        assert upstream.hits_for("/users/1") == 1
        assert cache_results(instances[0], "miss") == 1
        assert cache_results(instances[1], "hit") == 1


class TestContainer:
    """The Redis client is a container resource that tests override."""

    async def test_memory_backend_has_no_client(
        self, upstream: ScriptedUpstream
    ) -> None:
        """With the default backend the resource is None and nothing is shared."""
        container = Container()
        settings = shared_settings(upstream.url, "redis://127.0.0.1:1/0")
        memory = settings.model_copy(update={"cache": CacheSettings()})
        container.settings.override(providers.Object(memory))

        async with running_container(container):
            client = await resolve(container.redis_client)
            store = await resolve(container.cache_store)

        assert client is None
        assert store is None

    async def test_overridden_client_is_used(
        self, upstream: ScriptedUpstream, redis_server: RedisServer
    ) -> None:
        """A client given by override caches in that Redis, whatever the backend."""
        upstream.route("/users/1", Reply.json(user_json("Ada")))
        settings = shared_settings(upstream.url, "redis://127.0.0.1:1/0")
        memory = settings.model_copy(
            update={"cache": CacheSettings(redis_key_prefix=PREFIX)}
        )
        client = Redis.from_url(redis_server.url)
        container = Container()
        container.settings.override(providers.Object(memory))
        container.redis_client.override(providers.Object(client))
        try:
            async with running_container(container):
                users = await resolve(container.user_service)
                await users.get_user("1")
                stored = await client.exists(ENTRY_KEY)
        finally:
            await client.aclose()

        assert stored == 1
