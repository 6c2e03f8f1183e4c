"""The dependency-injection container of the proxies, the aggregator and metrics."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from dependency_injector import containers, providers
from prometheus_client import CollectorRegistry

from app.aggregators.dashboard import DashboardAggregator
from app.http import open_http_session
from app.metrics import ProxyMetrics
from app.proxies.interview import InterviewServiceProxy
from app.proxies.user import UserServiceProxy
from app.resilience.redis_store import build_cache_store, open_redis_client
from app.settings import load_settings

__all__ = [
    "Container",
    "init_resources",
    "resolve",
    "running_container",
    "shutdown_resources",
]

T = TypeVar("T")
ContainerT = TypeVar("ContainerT", bound=containers.Container)


class Container(containers.DeclarativeContainer):
    """Wires settings, one client session, a metrics registry and the proxies.

    The session and the Redis client are async resources, so the providers that
    need them return awaitables. The Redis client is None unless the cache
    backend is redis; overriding ``redis_client`` with a client makes the proxies
    cache in that Redis. ``running_container`` opens the resources inside the
    running event loop and closes them at the end, and ``resolve`` awaits a
    provider's value::

        async with running_container(Container()) as container:
            users = await resolve(container.user_service)
    """

    settings = providers.Singleton(load_settings)

    metrics_registry = providers.Singleton(CollectorRegistry)
    metrics = providers.Singleton(ProxyMetrics, registry=metrics_registry)

    http_session = providers.Resource(open_http_session, settings=settings)
    redis_client = providers.Resource(
        open_redis_client, settings=settings.provided.cache
    )
    cache_store = providers.Singleton(
        build_cache_store,
        client=redis_client,
        settings=settings.provided.cache,
        metrics=metrics,
    )

    user_service = providers.Singleton(
        UserServiceProxy,
        session=http_session,
        settings=settings.provided.user_service,
        metrics=metrics,
        cache_store=cache_store,
    )
    interview_service = providers.Singleton(
        InterviewServiceProxy,
        session=http_session,
        settings=settings.provided.interview_service,
        metrics=metrics,
        cache_store=cache_store,
    )

    dashboard_aggregator = providers.Singleton(
        DashboardAggregator,
        user_service=user_service,
        interview_service=interview_service,
        optional_deadline=settings.provided.gateway.optional_part_deadline,
    )


async def resolve(provider: providers.Provider[T]) -> T:
    """Return a provider's value, awaiting it when the provider is async.

    An override with ``providers.Object`` gives a plain value, the real provider an
    awaitable, so callers need not know which one is in place.
    """
    value: Any = provider()
    if inspect.isawaitable(value):
        value = await value
    return value  # type: ignore[no-any-return]


async def init_resources(container: containers.Container) -> None:
    """Open the container's resources, such as the client session."""
    await _await_if_needed(container.init_resources())


async def shutdown_resources(container: containers.Container) -> None:
    """Close the container's resources and forget the singletons built on them.

    Proxies obtained before the shutdown raise ServiceSessionClosedError. The next
    ``init_resources`` opens a new session and the next resolve builds new
    proxies, so one container can be started again.
    """
    await _await_if_needed(container.shutdown_resources())
    for singleton in container.traverse(types=[providers.Singleton]):
        # Only singletons built on a resource hold something closed now; the
        # settings and the metrics registry live on across restarts.
        if next(singleton.traverse(types=[providers.Resource]), None) is not None:
            singleton.reset()


@asynccontextmanager
async def running_container(container: ContainerT) -> AsyncIterator[ContainerT]:
    """Open the container's resources for the ``async with`` block."""
    await init_resources(container)
    try:
        yield container
    finally:
        await shutdown_resources(container)


async def _await_if_needed(result: object) -> None:
    if inspect.isawaitable(result):
        await result
