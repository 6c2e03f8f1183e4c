"""Calls per second of each client against the fixed upstream, side by side."""

from __future__ import annotations

import asyncio
import statistics
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from bench.clients import CLIENTS, Call, open_client
from bench.load import RunResult, closed_loop
from bench.production import configure_file_logging

__all__ = ["alternate", "load_slice", "measure_throughput"]

# A bound on the calls of one run, far above what the machine can do in it.
_MAX_CALLS_PER_SECOND = 100_000


def measure_throughput(
    *,
    base_url: str,
    config: Path,
    log_file: Path,
    concurrencies: tuple[int, ...],
    runs: int,
    target_concurrency: int,
    target_runs: int,
    seconds: float,
    slice_seconds: float,
    warmup: float,
) -> dict[str, Any]:
    """Return the requests per second of every run, by concurrency and client.

    Each concurrency level opens all clients and warms each up. A run gives
    every client ``seconds`` of load, cut into slices of ``slice_seconds``.
    The clients take the slices in turns, in an order rotated by one client
    each slice, so that a busy moment of the machine falls on all of them. The ratio
    of a client to bare aiohttp is taken per run, from loads that alternated
    within the same seconds, and its median is reported. The CPU time that
    this process spent per call is reported too: unlike requests per second,
    it does not depend on how much CPU the upstream took.

    ``target_concurrency``, where the target ratio is taken, gets
    ``target_runs`` runs and every other concurrency ``runs``.
    """
    configure_file_logging(log_file)
    slices = max(1, round(seconds / slice_seconds))
    runs_by_concurrency = {
        concurrency: target_runs if concurrency == target_concurrency else runs
        for concurrency in concurrencies
    }
    return asyncio.run(
        _measure(base_url, config, runs_by_concurrency, slices, slice_seconds, warmup)
    )


async def _measure(
    base_url: str,
    config: Path,
    runs_by_concurrency: dict[int, int],
    slices: int,
    slice_seconds: float,
    warmup: float,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for concurrency, runs in runs_by_concurrency.items():
        async with AsyncExitStack() as stack:
            calls = {
                name: await open_client(name, stack, base_url=base_url, config=config)
                for name in CLIENTS
            }
            run_rps, run_cpu = await alternate(
                calls,
                concurrency=concurrency,
                runs=runs,
                slices=slices,
                slice_seconds=slice_seconds,
                warmup=warmup,
            )
        results[str(concurrency)] = _summarize(run_rps, run_cpu)
    return results


async def alternate(
    calls: dict[str, Call],
    *,
    concurrency: int,
    runs: int,
    slices: int,
    slice_seconds: float,
    warmup: float,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Load each call in turns of short slices; return rps and CPU µs per call.

    Each call is warmed up first. In every run each call gets ``slices``
    slices, in an order rotated by one call each slice, so that a busy moment
    of the machine falls on all of them. Both lists hold one figure per run.
    """
    names = list(calls)
    for call in calls.values():
        await load_slice(call, concurrency, warmup)
    run_rps: dict[str, list[float]] = {name: [] for name in names}
    run_cpu: dict[str, list[float]] = {name: [] for name in names}
    for run_index in range(runs):
        done = dict.fromkeys(names, 0)
        spent = dict.fromkeys(names, 0.0)
        cpu = dict.fromkeys(names, 0.0)
        for slice_index in range(slices):
            shift = (run_index * slices + slice_index) % len(names)
            for name in names[shift:] + names[:shift]:
                cpu_started = time.process_time()
                run = await load_slice(calls[name], concurrency, slice_seconds)
                cpu[name] += time.process_time() - cpu_started
                done[name] += run.calls
                spent[name] += run.seconds
        for name in names:
            run_rps[name].append(done[name] / spent[name])
            run_cpu[name].append(cpu[name] / done[name] * 1e6)
    return run_rps, run_cpu


async def load_slice(call: Call, concurrency: int, seconds: float) -> RunResult:
    """Run ``call`` closed-loop for ``seconds``; raise when any call failed."""
    run = await closed_loop(
        call,
        concurrency=concurrency,
        duration=seconds,
        max_calls=int(_MAX_CALLS_PER_SECOND * seconds),
    )
    if run.errors:
        message = (
            f"{run.errors} of {run.calls} calls at concurrency {concurrency} "
            f"failed, first {run.first_error}"
        )
        raise RuntimeError(message)
    return run


def _summarize(
    run_rps: dict[str, list[float]], run_cpu: dict[str, list[float]]
) -> dict[str, Any]:
    bare = run_rps["aiohttp"]
    return {
        name: {
            "runs": rps,
            "median": statistics.median(rps),
            "cpu_us_per_call": statistics.median(run_cpu[name]),
            "ratio_runs": [mine / base for mine, base in zip(rps, bare, strict=True)],
            "ratio": statistics.median(
                mine / base for mine, base in zip(rps, bare, strict=True)
            ),
        }
        for name, rps in run_rps.items()
    }
