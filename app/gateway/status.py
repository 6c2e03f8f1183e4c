"""The live status page: each upstream's recent calls, circuit and endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import yarl
from aiohttp import web

from app.gateway.errors import json_error
from app.gateway.handlers import STATE_KEY
from app.gateway.health import UpstreamCheck
from app.proxies.endpoints import EndpointState

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "add_status_routes",
    "build_status",
    "status_asset",
    "status_json",
]

# Scripts, styles and fetches only from the gateway itself, so that no inline
# script runs even if data ever reached the page as markup.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_STATIC = resources.files("app.gateway") / "static"


def _load_asset(name: str, content_type: str) -> tuple[bytes, str]:
    return (_STATIC / name).read_bytes(), content_type


_ASSETS = {
    "/status": _load_asset("status.html", "text/html"),
    "/status.js": _load_asset("status.js", "text/javascript"),
    "/status.css": _load_asset("status.css", "text/css"),
}


def add_status_routes(app: web.Application) -> None:
    """Add GET /status, its script and style sheet, and GET /status.json."""
    for path in _ASSETS:
        app.router.add_get(path, status_asset)
    app.router.add_get("/status.json", status_json)


def build_status(upstreams: Sequence[UpstreamCheck]) -> dict[str, Any]:
    """Build the body of /status.json from the proxies' own figures."""
    return {
        "generatedAt": datetime.now(UTC).isoformat(timespec="seconds"),
        "services": [_service_status(upstream) for upstream in upstreams],
    }


async def status_asset(request: web.Request) -> web.Response:
    """Serve the status page, its script or its style sheet."""
    body, content_type = _ASSETS[request.path]
    response = web.Response(body=body, content_type=content_type, charset="utf-8")
    # Revalidated on each load, so that a new release's page is never mixed
    # with an old script.
    response.headers["Cache-Control"] = "no-cache"
    response.headers.update(_SECURITY_HEADERS)
    return response


async def status_json(request: web.Request) -> web.Response:
    """Serve every upstream's figures as JSON, or a 503 error before start-up."""
    state = request.app[STATE_KEY]
    if not state.ready or state.readiness is None:
        message = "the gateway has not started or is stopping"
        response = json_error(503, "not_ready", message)
    else:
        response = web.json_response(build_status(state.readiness.upstreams))
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(_SECURITY_HEADERS)
    return response


def _service_status(upstream: UpstreamCheck) -> dict[str, Any]:
    proxy = upstream.proxy
    stats = proxy.engine.stats.snapshot()
    error_ratio = None if stats.error_ratio is None else round(stats.error_ratio, 4)
    p99_ms = None if stats.p99_ms is None else round(stats.p99_ms, 2)
    return {
        "name": proxy.name,
        "required": upstream.required,
        "windowSeconds": round(stats.window, 1),
        "calls": stats.calls,
        "errors": stats.errors,
        "callsPerSecond": round(stats.calls_per_second, 3),
        "errorRatio": error_ratio,
        "p99Ms": p99_ms,
        "inFlight": stats.in_flight,
        "circuit": proxy.circuit_state(),
        "endpoints": [_endpoint_status(state) for state in proxy.endpoint_states()],
    }


def _endpoint_status(endpoint: EndpointState) -> dict[str, str]:
    # The settings reject URLs with credentials; dropping them here as well
    # keeps them off the page should an endpoint ever come from elsewhere.
    url = yarl.URL(endpoint.url).with_user(None).with_query(None).with_fragment(None)
    return {"url": str(url), "state": endpoint.state}
