"""Per-call cost of each layer of the proxy, timed in-process without a network."""

from __future__ import annotations

import asyncio
import statistics
import time
import timeit
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import tenacity
from loguru import logger
from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter

from app.metrics import ProxyMetrics
from app.models import User
from app.resilience.breaker import CircuitBreaker
from app.resilience.budget import RetryBudget
from app.resilience.bulkhead import Bulkhead
from app.settings import ServiceSettings
from bench.production import configure_file_logging
from bench.upstreams import sandbox_bodies

__all__ = ["LAYERS", "measure_overhead"]

# Stable keys and what each one times, in the order of the table.
LAYERS = {
    "empty_await": "await of an empty coroutine (the floor of the async rows)",
    "tenacity_one_attempt": "tenacity AsyncRetrying created, one successful attempt",
    "metrics": "a call's count and duration recorded for service_calls_total and "
    "the duration histogram",
    "loguru_filtered_debug": "loguru debug call below the INFO sink level",
    "loguru_info_file": "loguru INFO line written to a file sink",
    "pydantic_user": "TypeAdapter(User).validate_json of the user body",
    "breaker": "CircuitBreaker.try_acquire + record_success",
    "bulkhead": "Bulkhead.try_acquire + release",
    "budget_record_call": "RetryBudget.record_call",
}
_REPEATS = 9
# Seconds one repeat of a layer should take, once calibrated.
_REPEAT_SECONDS = 0.05


def measure_overhead(*, log_file: Path) -> dict[str, Any]:
    """Return microseconds per call of every layer: best and median of 9 repeats.

    The best repeat is the figure to read, as timeit's documentation advises:
    slower repeats measure other processes that took the CPU, not the code.
    """
    configure_file_logging(log_file)
    settings = ServiceSettings(url="http://127.0.0.1:1")
    sync_layers = _sync_layers(settings)
    results = {name: _time_sync(func) for name, func in sync_layers.items()}
    results.update(asyncio.run(_time_async_layers(settings)))
    return {name: results[name] for name in LAYERS}


def _sync_layers(settings: ServiceSettings) -> dict[str, Callable[[], object]]:
    call_metrics = ProxyMetrics(CollectorRegistry()).for_call(
        "user-service", "GET", "get_user"
    )
    log = logger.bind(service="user-service")
    adapter = TypeAdapter(User)
    body = sandbox_bodies()["user"]
    breaker = CircuitBreaker(
        "user-service",
        failure_ratio=settings.breaker_failure_ratio,
        minimum_calls=settings.breaker_minimum_calls,
        window=settings.breaker_window,
        break_duration=settings.breaker_break_duration,
        half_open_probes=settings.breaker_half_open_probes,
    )
    bulkhead = Bulkhead(
        max_concurrent=settings.bulkhead_max_concurrent,
        max_queue=settings.bulkhead_max_queue,
    )
    budget = RetryBudget(
        ratio=settings.budget_ratio,
        min_retries=settings.budget_min_retries,
        window=settings.budget_window,
    )

    def metrics() -> None:
        call_metrics.succeeded(1.7)

    def filtered_debug() -> None:
        log.debug(
            "{method} {path} attempt {attempt}", method="GET", path="/users", attempt=1
        )

    def info_line() -> None:
        log.info(
            "{method} {path} -> {status} in {duration_ms:.1f} ms",
            method="GET",
            path="/users/{id}",
            status=200,
            duration_ms=1.23,
        )

    def breaker_pair() -> None:
        breaker.try_acquire()
        breaker.record_success()

    def bulkhead_pair() -> None:
        bulkhead.try_acquire()
        bulkhead.release()

    return {
        "metrics": metrics,
        "loguru_filtered_debug": filtered_debug,
        "loguru_info_file": info_line,
        "pydantic_user": lambda: adapter.validate_json(body),
        "breaker": breaker_pair,
        "bulkhead": bulkhead_pair,
        "budget_record_call": budget.record_call,
    }


def _time_sync(func: Callable[[], object]) -> dict[str, float]:
    timer = timeit.Timer(func)
    number, seconds = timer.autorange()
    number = max(1, int(number * _REPEAT_SECONDS / seconds))
    per_call = [total / number * 1e6 for total in timer.repeat(_REPEATS, number)]
    return _summary(per_call, number)


async def _time_async_layers(settings: ServiceSettings) -> dict[str, Any]:
    async def empty() -> None:
        return None

    backoff = _backoff(settings)

    async def tenacity_attempt() -> None:
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(settings.retries + 1),
            wait=backoff,
            retry=tenacity.retry_if_exception_type(OSError),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                pass

    return {
        "empty_await": await _time_async(empty),
        "tenacity_one_attempt": await _time_async(tenacity_attempt),
    }


async def _time_async(func: Callable[[], Awaitable[None]]) -> dict[str, float]:
    async def loop(number: int) -> float:
        started = time.perf_counter()
        for _ in range(number):
            await func()
        return time.perf_counter() - started

    number = 1
    while (seconds := await loop(number)) < _REPEAT_SECONDS / 2:
        number *= 2
    number = max(1, int(number * _REPEAT_SECONDS / seconds))
    per_call = [await loop(number) / number * 1e6 for _ in range(_REPEATS)]
    return _summary(per_call, number)


def _backoff(settings: ServiceSettings) -> tenacity.wait.wait_base:
    """Build the engine's default backoff: exponential with equal jitter."""
    half_initial = settings.backoff_initial / 2
    half_max = settings.backoff_max / 2
    fixed = tenacity.wait_exponential(
        multiplier=half_initial, exp_base=settings.backoff_multiplier, max=half_max
    )
    random = tenacity.wait_random_exponential(
        multiplier=half_initial, exp_base=settings.backoff_multiplier, max=half_max
    )
    return fixed + random


def _summary(per_call: list[float], number: int) -> dict[str, float]:
    return {
        "median_us": statistics.median(per_call),
        "best_us": min(per_call),
        "loops": number,
    }
