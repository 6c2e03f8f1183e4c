"""Request handlers of the gateway."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiohttp import web

from app.aggregators.dashboard import DashboardAggregator
from app.gateway.errors import json_error

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
    """What the handlers use, set while the app starts and cleared as it stops."""

    aggregator: DashboardAggregator | None = None
    ready: bool = False

    def require_aggregator(self) -> DashboardAggregator:
        if self.aggregator is None:
            message = "the gateway has not started: no aggregator is set"
            raise RuntimeError(message)
        return self.aggregator


STATE_KEY = web.AppKey("state", GatewayState)

# Ids the gateway passes on: letters, digits, "-" and "_", at most 64 characters.
USER_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


async def get_dashboard(request: web.Request) -> web.Response:
    """Return a user's dashboard as JSON."""
    user_id = request.match_info["user_id"]
    if USER_ID_PATTERN.fullmatch(user_id) is None:
        message = "user_id must be 1 to 64 letters, digits, '-' or '_'"
        return json_error(400, "invalid_user_id", message)
    aggregator = request.app[STATE_KEY].require_aggregator()
    dashboard = await aggregator.get_user_dashboard(user_id)
    return web.Response(
        body=dashboard.model_dump_json().encode(), content_type="application/json"
    )


async def live(request: web.Request) -> web.Response:
    """Tell that the process serves requests."""
    return web.json_response({"status": "alive"})


async def ready(request: web.Request) -> web.Response:
    """Tell whether the gateway's resources are open and it can take traffic."""
    if request.app[STATE_KEY].ready:
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "not_ready"}, status=503)
