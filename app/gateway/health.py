"""Readiness of the gateway from its upstreams' health and circuit states."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from app.proxies.base import BaseServiceProxy, EndpointHealth, HealthReport

__all__ = ["ReadinessProbe", "UpstreamCheck"]


@dataclass(frozen=True)
class UpstreamCheck:
    """An upstream the gateway depends on; only required ones gate readiness."""

    proxy: BaseServiceProxy
    required: bool


@dataclass
class ReadinessProbe:
    """Probe every upstream, reusing a result for ``cache_seconds``.

    Reuse keeps a load balancer that polls often from turning into a health
    probe storm on the upstreams.
    """

    upstreams: list[UpstreamCheck]
    cache_seconds: float
    _checked_at: float = field(default=-1e9, init=False)
    _result: tuple[int, dict[str, Any]] | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def check(self) -> tuple[int, dict[str, Any]]:
        """Return the HTTP status and JSON body of the readiness response.

        503 when a required upstream is unreachable or its circuit is open,
        because no dashboard can be served then; 200 otherwise, with
        ``degraded`` when an optional upstream fails.
        """
        async with self._lock:
            now = time.monotonic()
            if self._result is None or now - self._checked_at >= self.cache_seconds:
                self._result = await self._probe()
                self._checked_at = time.monotonic()
            return self._result

    async def _probe(self) -> tuple[int, dict[str, Any]]:
        reports = await asyncio.gather(
            *(upstream.proxy.check_health() for upstream in self.upstreams)
        )
        services: dict[str, Any] = {}
        required_down = False
        optional_down = False
        for upstream, report in zip(self.upstreams, reports, strict=True):
            healthy = _healthy(report)
            services[report.service] = {
                "reachable": report.reachable,
                "statusCode": report.status_code,
                "latencyMs": report.latency_ms,
                "circuit": report.circuit,
                "required": upstream.required,
                "healthy": healthy,
                "error": report.error,
                "endpoints": [
                    _endpoint_json(endpoint) for endpoint in report.endpoints
                ],
            }
            if not healthy and upstream.required:
                required_down = True
            elif not healthy:
                optional_down = True
        if required_down:
            return 503, {"status": "not_ready", "services": services}
        status = "degraded" if optional_down else "ready"
        return 200, {"status": status, "services": services}


def _healthy(report: HealthReport) -> bool:
    return report.reachable and report.circuit != "open"


def _endpoint_json(endpoint: EndpointHealth) -> dict[str, Any]:
    return {
        "url": endpoint.url,
        "state": endpoint.state,
        "reachable": endpoint.reachable,
        "statusCode": endpoint.status_code,
        "latencyMs": endpoint.latency_ms,
        "healthy": endpoint.healthy,
        "error": endpoint.error,
    }
