"""The gateway web application."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from app.containers import Container, init_resources, resolve, shutdown_resources
from app.gateway.errors import error_middleware, request_id_middleware
from app.gateway.handlers import (
    STATE_KEY,
    GatewayState,
    get_dashboard,
    live,
    ready,
)
from app.gateway.health import ReadinessProbe, UpstreamCheck
from app.gateway.status import add_status_routes
from app.gateway.tracing import trace_context_middleware
from app.metrics import scrape_registry

__all__ = [
    "CONTAINER_KEY",
    "GC_FIRST_THRESHOLD",
    "create_app",
    "tune_collector_on_startup",
]

CONTAINER_KEY = web.AppKey("container", Container)
# Net allocations of tracked objects that start a youngest-generation
# collection in a serving gateway. Python's default is 700.
GC_FIRST_THRESHOLD = 10_000


def create_app(container: Container | None = None) -> web.Application:
    """Build the gateway around a container; a new one is made when none is given.

    The container's resources open when the app starts and close when it stops.
    Requests get OpenTelemetry spans when an SDK tracer provider is installed
    before this is called; see :mod:`app.tracing`.
    """
    container = container if container is not None else Container()
    middlewares = [request_id_middleware, trace_context_middleware(), error_middleware]
    app = web.Application(middlewares=middlewares)
    app[CONTAINER_KEY] = container
    app[STATE_KEY] = GatewayState()
    app.cleanup_ctx.append(_container_resources)
    app.router.add_get("/api/dashboard/{user_id}", get_dashboard)
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    registry = scrape_registry(container.metrics_registry())
    app.router.add_get("/metrics", _metrics_handler(registry))
    add_status_routes(app)
    return app


def tune_collector_on_startup(app: web.Application) -> None:
    """Set the garbage collector up for serving once ``app`` has started.

    Modules, settings, proxies and routes live as long as the process, yet
    every full collection walks them all, so they are frozen after start-up
    and left out of collections. A request's objects die young, mostly freed
    by reference counting, and the default of a collection every 700 net
    allocations ran one every few dashboards. The first threshold is raised
    to ``GC_FIRST_THRESHOLD``, which bounds uncollected cyclic garbage at
    that many objects. Only for a process that serves one app until it
    exits: frozen objects are never collected.
    """
    app.on_startup.append(_tune_collector)


async def _tune_collector(app: web.Application) -> None:
    # Runs after the container's start-up, which the app registered first.
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(GC_FIRST_THRESHOLD, second, third)


async def _container_resources(app: web.Application) -> AsyncIterator[None]:
    container = app[CONTAINER_KEY]
    await init_resources(container)
    state = app[STATE_KEY]
    settings = await resolve(container.settings)
    state.aggregator = await resolve(container.dashboard_aggregator)
    state.dashboard_deadline = settings.gateway.dashboard_deadline
    users = await resolve(container.user_service)
    interviews = await resolve(container.interview_service)
    state.readiness = ReadinessProbe(
        upstreams=[
            UpstreamCheck(users, required=True),
            UpstreamCheck(interviews, required=False),
        ],
        cache_seconds=settings.gateway.health_cache_seconds,
    )
    state.ready = True
    try:
        yield
    finally:
        state.ready = False
        await shutdown_resources(container)


def _metrics_handler(registry: CollectorRegistry) -> Handler:
    """Serve ``registry`` as prometheus_client does, whatever the Accept header.

    prometheus_client raises on some malformed OpenMetrics versions in Accept,
    which any caller can send; such a scrape gets the text format instead.
    """
    serve = make_aiohttp_handler(registry)

    async def metrics(request: web.Request) -> web.StreamResponse:
        try:
            return await serve(request)
        except (TypeError, ValueError):
            headers = CIMultiDict(request.headers)
            headers.popall(hdrs.ACCEPT, None)
            return await serve(request.clone(headers=headers))

    return metrics
