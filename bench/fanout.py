"""Dashboard latency: the aggregator's fan-out against sequential and ideal calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from app.aggregators.dashboard import DASHBOARD_INTERVIEWS_LIMIT
from app.containers import resolve
from bench.load import closed_loop, percentile
from bench.production import configure_file_logging, production_container

__all__ = ["measure_fanout"]

USER_ID = "1"


def measure_fanout(
    *,
    config: Path,
    log_file: Path,
    samples: int,
    concurrency: int,
    warmup: int,
) -> dict[str, Any]:
    """Return p50 and p99 in ms of the aggregator, sequential calls and each call.

    Every variant runs ``samples`` times, ``concurrency`` at once, after
    ``warmup`` calls. The ideal is the slowest of the three calls measured alone.
    """
    configure_file_logging(log_file)
    return asyncio.run(_measure(config, samples, concurrency, warmup))


async def _measure(
    config: Path, samples: int, concurrency: int, warmup: int
) -> dict[str, Any]:
    async with production_container(config) as container:
        aggregator = await resolve(container.dashboard_aggregator)
        users = await resolve(container.user_service)
        interviews = await resolve(container.interview_service)

        async def get_interviews() -> object:
            return await interviews.get_user_interviews(
                USER_ID, limit=DASHBOARD_INTERVIEWS_LIMIT
            )

        async def sequential() -> None:
            await users.get_user(USER_ID)
            await get_interviews()
            await users.get_user_stats(USER_ID)

        variants: dict[str, Callable[[], Awaitable[object]]] = {
            "aggregator": lambda: aggregator.get_user_dashboard(USER_ID),
            "sequential": sequential,
            "get_user": lambda: users.get_user(USER_ID),
            "get_user_interviews": get_interviews,
            "get_user_stats": lambda: users.get_user_stats(USER_ID),
        }
        results: dict[str, Any] = {}
        for name, call in variants.items():
            await _run(call, concurrency, warmup)
            latencies = await _run(call, concurrency, samples)
            results[name] = {
                "p50_ms": percentile(latencies, 0.50) * 1000,
                "p99_ms": percentile(latencies, 0.99) * 1000,
                "samples": len(latencies),
            }
    singles = ("get_user", "get_user_interviews", "get_user_stats")
    slowest = max(singles, key=lambda name: results[name]["p50_ms"])
    results["ideal"] = {**results[slowest], "call": slowest}
    return results


async def _run(
    call: Callable[[], Awaitable[object]], concurrency: int, calls: int
) -> list[float]:
    # The call count ends the run. The duration only bounds a hung upstream.
    run = await closed_loop(
        call,
        concurrency=concurrency,
        duration=60.0,
        max_calls=calls,
        record_latency=True,
    )
    if run.errors:
        message = f"{run.errors} of {run.calls} calls failed, first {run.first_error}"
        raise RuntimeError(message)
    return run.latencies
