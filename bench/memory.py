"""Resident memory and open descriptors over many calls through one session."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from app.containers import resolve
from app.models import User
from bench.load import closed_loop
from bench.production import configure_file_logging, production_container

__all__ = ["measure_memory"]


def measure_memory(
    *,
    config: Path,
    log_file: Path,
    calls: int,
    warmup: int,
    concurrency: int,
    max_seconds: float,
) -> dict[str, Any]:
    """Return RSS in MiB and open descriptors after warm-up and after ``calls``.

    Both readings follow a full garbage collection, so that they count what
    the process keeps rather than garbage not yet collected.
    """
    configure_file_logging(log_file)
    return asyncio.run(_measure(config, calls, warmup, concurrency, max_seconds))


async def _measure(
    config: Path, calls: int, warmup: int, concurrency: int, max_seconds: float
) -> dict[str, Any]:
    async with production_container(config) as container:
        users = await resolve(container.user_service)

        def call() -> Awaitable[User]:
            return users.get_user("1")

        await closed_loop(
            call, concurrency=concurrency, duration=max_seconds, max_calls=warmup
        )
        gc.collect()
        rss_before = _rss_mib()
        fds_before = _open_descriptors()
        run = await closed_loop(
            call, concurrency=concurrency, duration=max_seconds, max_calls=calls
        )
        if run.errors:
            message = (
                f"{run.errors} of {run.calls} calls failed, first {run.first_error}"
            )
            raise RuntimeError(message)
        gc.collect()
        rss_after = _rss_mib()
        fds_after = _open_descriptors()
    return {
        "calls": run.calls,
        "seconds": run.seconds,
        "rps": run.rps,
        "rss_before_mib": rss_before,
        "rss_after_mib": rss_after,
        "rss_growth_mib": rss_after - rss_before,
        "fds_before": fds_before,
        "fds_after": fds_after,
    }


def _rss_mib() -> float:
    """Return VmRSS of this process from /proc/self/status, in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    message = "/proc/self/status has no VmRSS line"
    raise RuntimeError(message)


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))
