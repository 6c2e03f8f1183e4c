"""CPU time per call of each layer of a proxy read, measured side by side.

This times the ladder that ``make bench-instructions`` counts
(bench/instructions.py): each step adds one layer of
``UserServiceProxy.get_user`` to a bare aiohttp GET. Instruction counts do not
show what the layers cost among all the other work of a busy event loop, where
each instruction of the proxy took longer on average than one of aiohttp. Here
every step runs closed-loop at concurrency 16 against the fixed upstream, in
turns of short slices as in the throughput section, and the process's CPU time
per call is what is reported.
"""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path
from typing import Any

__all__ = ["CONCURRENCY", "measure_layers"]

CONCURRENCY = 16


def measure_layers(
    *,
    base_url: str,
    log_file: Path,
    runs: int,
    seconds: float,
    slice_seconds: float,
    warmup: float,
) -> dict[str, Any]:
    """Return the median CPU µs per call of every step of the ladder."""
    from bench.production import configure_file_logging

    configure_file_logging(log_file)
    slices = max(1, round(seconds / slice_seconds))
    return asyncio.run(_measure(base_url, runs, slices, slice_seconds, warmup))


async def _measure(
    base_url: str, runs: int, slices: int, slice_seconds: float, warmup: float
) -> dict[str, Any]:
    import aiohttp
    from prometheus_client import CollectorRegistry
    from pydantic import TypeAdapter

    from app.metrics import ProxyMetrics
    from app.models.user import User
    from app.proxies import UserServiceProxy
    from app.settings import ServiceSettings
    from bench.instructions import STEPS, step_call
    from bench.throughput import alternate

    async with aiohttp.ClientSession() as session:
        users = UserServiceProxy(
            session, ServiceSettings(url=base_url), ProxyMetrics(CollectorRegistry())
        )
        adapter = TypeAdapter(User)
        calls = {
            step: step_call(step, session, users, base_url, adapter) for step in STEPS
        }
        _, cpu = await alternate(
            calls,
            concurrency=CONCURRENCY,
            runs=runs,
            slices=slices,
            slice_seconds=slice_seconds,
            warmup=warmup,
        )
    return {
        step: {"cpu_us_per_call": statistics.median(runs_us), "runs": runs_us}
        for step, runs_us in cpu.items()
    }
