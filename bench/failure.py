"""Behaviour under failure: rejection time of an open circuit, retry amplification."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry

from app.containers import resolve
from app.proxies import CircuitOpenError, ServiceConnectionError, ServiceServerError
from app.resilience.breaker import CircuitState
from bench.load import closed_loop, percentile
from bench.production import configure_file_logging, production_container

__all__ = ["measure_amplification", "measure_circuit_open"]

USER_ID = "1"
# Calls against a closed port that may be needed to open the circuit.
_MAX_OPENING_CALLS = 200
# Share of the break duration the timed loop may use, so that the circuit
# cannot turn half-open and send probes while it is timed.
_BREAK_SHARE = 0.6


def measure_circuit_open(
    *, config: Path, log_file: Path, iterations: int, warmup: int
) -> dict[str, Any]:
    """Return the microseconds that ``get_user`` takes to raise CircuitOpenError.

    ``config`` points user-service at a closed loopback port. Calls with
    retries=0 fail there until the breaker opens. After that, every timed call
    is rejected without touching the network.
    """
    configure_file_logging(log_file)
    return asyncio.run(_circuit_open(config, iterations, warmup))


async def _circuit_open(config: Path, iterations: int, warmup: int) -> dict[str, Any]:
    async with production_container(config) as container:
        users = await resolve(container.user_service)
        breaker = users.engine.breaker
        if breaker is None:
            message = "the circuit breaker is disabled in the production settings"
            raise RuntimeError(message)
        opening_calls = 0
        while breaker.state is not CircuitState.OPEN:
            if opening_calls >= _MAX_OPENING_CALLS:
                message = f"the circuit did not open after {opening_calls} failures"
                raise RuntimeError(message)
            opening_calls += 1
            with contextlib.suppress(ServiceConnectionError):
                await users.get_user(USER_ID, retries=0)
        stop_at = time.monotonic() + breaker.open_remaining() * _BREAK_SHARE
        timings_ns: list[int] = []
        for index in range(warmup + iterations):
            if time.monotonic() >= stop_at:
                break
            started = time.perf_counter_ns()
            try:
                await users.get_user(USER_ID)
            except CircuitOpenError:
                elapsed = time.perf_counter_ns() - started
            else:
                message = "a call succeeded while the circuit was open"
                raise RuntimeError(message)
            if index >= warmup:
                timings_ns.append(elapsed)
        if breaker.state is not CircuitState.OPEN:
            message = "the circuit left the open state while it was timed"
            raise RuntimeError(message)
    micros = [ns / 1000 for ns in timings_ns]
    return {
        "p50_us": percentile(micros, 0.50),
        "p99_us": percentile(micros, 0.99),
        "mean_us": statistics.fmean(micros),
        "iterations": len(micros),
        "opening_calls": opening_calls,
    }


def measure_amplification(
    *,
    config: Path,
    count_url: str,
    log_file: Path,
    concurrency: int,
    seconds: float,
    max_calls: int,
    budget_enabled: bool,
) -> dict[str, Any]:
    """Return upstream requests per logical call while the upstream returns 503.

    The breaker is off, so that only the retry budget limits the retries, and
    backoff is 0 s, so that a few seconds of steady load make many calls.
    Retries and the budget keep their production settings.
    """
    configure_file_logging(log_file)
    overrides = {
        "breaker_enabled": False,
        "backoff_initial": 0.0,
        "backoff_max": 0.0,
        "budget_enabled": budget_enabled,
    }
    return asyncio.run(
        _amplification(config, count_url, overrides, concurrency, seconds, max_calls)
    )


async def _amplification(
    config: Path,
    count_url: str,
    overrides: dict[str, Any],
    concurrency: int,
    seconds: float,
    max_calls: int,
) -> dict[str, Any]:
    before = await _upstream_requests(count_url)
    async with production_container(config, user_service=overrides) as container:
        users = await resolve(container.user_service)
        registry = await resolve(container.metrics_registry)

        async def call() -> None:
            try:
                await users.get_user(USER_ID)
            except ServiceServerError:
                return

        run = await closed_loop(
            call, concurrency=concurrency, duration=seconds, max_calls=max_calls
        )
        if run.errors:
            message = f"{run.errors} calls failed otherwise, first {run.first_error}"
            raise RuntimeError(message)
        retries = _sample(registry, "service_retries_total", method="GET")
        budget_rejections = _sample(
            registry, "service_calls_rejected_total", reason="retry_budget"
        )
        settings = users.settings
    requests = await _upstream_requests(count_url) - before
    return {
        "amplification": requests / run.calls,
        "upstream_requests": requests,
        "logical_calls": run.calls,
        "retries": retries,
        "budget_rejections": budget_rejections,
        "seconds": run.seconds,
        "retries_setting": settings.retries,
        "budget_ratio": settings.budget_ratio,
        "budget_min_retries": settings.budget_min_retries,
        "budget_window": settings.budget_window,
    }


async def _upstream_requests(count_url: str) -> int:
    async with aiohttp.ClientSession(trust_env=False) as session:  # noqa: SIM117
        async with session.get(count_url) as response:
            body = await response.json()
    requests: int = body["requests"]
    return requests


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, {"service": "user-service", **labels})
    return value or 0.0
