"""Request handlers of the gateway."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aiohttp import web

from app.aggregators.dashboard import DashboardAggregator
from app.gateway.errors import json_error
from app.gateway.health import ReadinessProbe
from app.resilience.deadline import (
    DEADLINE_HEADER,
    deadline_scope,
    parse_deadline_header,
)
from app.resilience.timeouts import SharedTimeouts

__all__ = [
    "STATE_KEY",
    "USER_ID_PATTERN",
    "GatewayState",
    "get_dashboard",
    "live",
    "ready",
]


@dataclass
class GatewayState:
    """Objects the handlers use, set while the app starts and cleared as it stops."""

    aggregator: DashboardAggregator | None = None
    readiness: ReadinessProbe | None = None
    dashboard_deadline: float = 5.0
    ready: bool = False
    # Bounds each dashboard request with one timer shared by all of them.
    timeouts: SharedTimeouts = field(default_factory=SharedTimeouts)

    def require_aggregator(self) -> DashboardAggregator:
        if self.aggregator is None:
            message = "the gateway has not started: no aggregator is set"
            raise RuntimeError(message)
        return self.aggregator


STATE_KEY = web.AppKey("state", GatewayState)

# Seconds past the dashboard deadline before the handler itself gives up.
_DEADLINE_GRACE = 0.05

# Ids the gateway passes on: letters, digits, "-" and "_", at most 64 characters.
USER_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


async def get_dashboard(request: web.Request) -> web.Response:
    """Return a user's dashboard as JSON."""
    user_id = request.match_info["user_id"]
    if USER_ID_PATTERN.fullmatch(user_id) is None:
        message = "user_id must be 1 to 64 letters, digits, '-' or '_'"
        return json_error(400, "invalid_user_id", message)
    state = request.app[STATE_KEY]
    try:
        caller_budget = parse_deadline_header(request.headers.get(DEADLINE_HEADER))
    except ValueError as exc:
        return json_error(400, "invalid_deadline", str(exc))
    budget = state.dashboard_deadline
    if caller_budget is not None:
        budget = min(budget, caller_budget)
    aggregator = state.require_aggregator()
    with deadline_scope(budget):
        # The proxies end their calls by the deadline; this bound also covers
        # time spent outside them, such as waiting on a coalesced cache load.
        dashboard = await state.timeouts.wait_for(
            aggregator.get_user_dashboard(user_id), budget + _DEADLINE_GRACE
        )
    return web.Response(
        body=dashboard.model_dump_json().encode(), content_type="application/json"
    )


async def live(request: web.Request) -> web.Response:
    """Tell that the process serves requests."""
    return web.json_response({"status": "alive"})


async def ready(request: web.Request) -> web.Response:
    """Report every upstream's reachability and circuit, with a status for LBs."""
    state = request.app[STATE_KEY]
    if not state.ready or state.readiness is None:
        return web.json_response({"status": "not_ready", "services": {}}, status=503)
    status, body = await state.readiness.check()
    return web.json_response(body, status=status)
