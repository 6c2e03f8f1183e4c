"""Concurrent dashboard clients and what they observed."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

__all__ = ["LoadRecord", "run_clients"]

# Pause after a client-side error, so that a gateway that refuses connections
# does not turn the clients into a busy loop.
_ERROR_PAUSE = 0.05


@dataclass
class LoadRecord:
    """Outcomes of every finished request of one load run."""

    started: float
    """time.monotonic() when the run began."""
    outcomes: Counter[str] = field(default_factory=Counter)
    """HTTP status codes, and client-side errors as ``error:<exception class>``."""
    degraded_parts: Counter[str] = field(default_factory=Counter)
    """Dashboard error entries of 200 responses, as ``<part>:<kind>``."""
    degraded_responses: int = 0
    """200 responses with at least one entry in ``errors``."""
    malformed_bodies: int = 0
    """200 responses whose body is not a dashboard."""
    timeline: list[tuple[float, float, int]] = field(default_factory=list)
    """(offset of the start in seconds, latency in seconds, status) per response."""
    finished: float | None = None

    @property
    def requests(self) -> int:
        """Requests that got an HTTP response."""
        return len(self.timeline)

    def add_response(self, status: int, body: bytes, *, start: float) -> None:
        """Record one HTTP response that began at ``start`` (monotonic seconds)."""
        latency = time.monotonic() - start
        self.outcomes[str(status)] += 1
        self.timeline.append((start - self.started, latency, status))
        if status == 200:
            self._check_dashboard(body)

    def add_error(self, exc: BaseException) -> None:
        """Record a request that ended without an HTTP response."""
        self.outcomes[f"error:{type(exc).__name__}"] += 1

    def _check_dashboard(self, body: bytes) -> None:
        try:
            dashboard = json.loads(body)
            errors = dashboard["errors"]
            parts = [f"{error['part']}:{error['kind']}" for error in errors]
        except (ValueError, KeyError, TypeError):
            self.malformed_bodies += 1
            return
        if parts:
            self.degraded_responses += 1
            self.degraded_parts.update(parts)


async def run_clients(
    base_url: str,
    user_ids: Sequence[str],
    *,
    clients: int,
    duration: float,
    request_timeout: float,
) -> LoadRecord:
    """Run ``clients`` tasks that GET dashboards in a loop for ``duration`` seconds.

    A client starts no request after ``duration``; requests in flight then finish
    or time out after ``request_timeout`` seconds, which bounds the whole run.
    """
    record = LoadRecord(started=time.monotonic())
    end = record.started + duration
    timeout = aiohttp.ClientTimeout(total=request_timeout)
    connector = aiohttp.TCPConnector(limit=clients)
    session = aiohttp.ClientSession(connector=connector, timeout=timeout)
    async with session, asyncio.TaskGroup() as group:
        for index in range(clients):
            client = _client(session, base_url, user_ids, index, end, record)
            group.create_task(client)
    record.finished = time.monotonic()
    return record


async def _client(
    session: aiohttp.ClientSession,
    base_url: str,
    user_ids: Sequence[str],
    index: int,
    end: float,
    record: LoadRecord,
) -> None:
    # Each client walks the ids from its own offset, so all users stay in use.
    position = index
    while time.monotonic() < end:
        user_id = user_ids[position % len(user_ids)]
        position += 1
        start = time.monotonic()
        try:
            async with session.get(f"{base_url}/api/dashboard/{user_id}") as response:
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            record.add_error(exc)
            await asyncio.sleep(_ERROR_PAUSE)
            continue
        record.add_response(response.status, body, start=start)
