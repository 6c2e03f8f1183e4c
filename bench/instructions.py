"""Instructions per call of each layer of a proxy read, counted by callgrind.

Timings on a shared 2-core machine move by tens of percent from run to run, while
callgrind counts the instructions a process executes, whatever else the machine
runs. Each step of the ladder below adds one layer of ``UserServiceProxy.get_user``
to a bare aiohttp GET, so the difference between two steps is what that layer
costs. Run it with ``make bench-instructions`` (valgrind is needed); it writes
``bench/instructions.json``, which the next ``make bench`` renders into
BENCHMARKS.md.

Each step runs twice under callgrind, with 20 and with 70 rounds of 16
concurrent calls against the fixed upstream in its own process. The difference
of the two counts, divided by the 800 calls between them, leaves out start-up and
imports.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.processes import REPO_ROOT, ServerProcess, python_module

__all__ = ["REFERENCE_STEPS", "STEPS", "main", "step_call"]

RESULTS_PATH = REPO_ROOT / "bench" / "instructions.json"
CONCURRENCY = 16
FEW_ROUNDS = 20
MANY_ROUNDS = 70
# Bound on one callgrind run; one takes 20 to 60 s on a loaded 2-core machine.
RUN_TIMEOUT = 600.0

# Step name and what it adds to the step before it, in ladder order.
STEPS: dict[str, str] = {
    "aiohttp_json": "bare aiohttp: session.get + resp.json(), the benchmark's limit",
    "aiohttp_no_timer": "bare aiohttp without its per-request timeout, a reference "
    "that the next step does not build on",
    "aiohttp_validate": "resp.read() + pydantic validate_json instead of resp.json()",
    "hand_policies": "hand-inlined: breaker, budget, bulkhead, deadline header, "
    "shared timeout, call metrics",
    "engine_attempt": "CallEngine._attempt on a prebuilt request",
    "engine_call": "CallEngine.call: call metrics, status-page stats, in-flight "
    "count, span hook",
    "proxy_get_user": "UserServiceProxy.get_user: the lookup of the request kept "
    "for the id, and the call's deadline",
}
# Steps measured for comparison only; the step after one adds to the step before it.
REFERENCE_STEPS = frozenset({"aiohttp_no_timer"})
_COLLECTED = re.compile(r"Collected : (\d+)")


def main() -> int:
    """Count every step, print the ladder and write bench/instructions.json."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("valgrind is not installed: apt-get install valgrind", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-ir-") as work:
        server = ServerProcess(
            "fixed", python_module("bench.upstreams", "fixed"), log_dir=Path(work)
        )
        # Two callgrind runs at a time, one per core.
        with server, ThreadPoolExecutor(max_workers=2) as pool:
            counts = dict(
                zip(
                    STEPS,
                    pool.map(lambda step: _per_call(valgrind, step, server.url), STEPS),
                    strict=True,
                )
            )
    record = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "make bench-instructions",
        "calls_counted": (MANY_ROUNDS - FEW_ROUNDS) * CONCURRENCY,
        "instructions_per_call": counts,
        "steps": STEPS,
    }
    RESULTS_PATH.write_text(json.dumps(record, indent=2) + "\n")
    previous = None
    for step, count in counts.items():
        added = "" if previous is None else f"  ({count - previous:+,})"
        print(f"{step:<18} {count:>9,}{added}")
        if step not in REFERENCE_STEPS:
            previous = count
    print(f"wrote {RESULTS_PATH.relative_to(REPO_ROOT)}")
    return 0


def _per_call(valgrind: str, step: str, url: str) -> int:
    few = _collected(valgrind, step, url, FEW_ROUNDS)
    many = _collected(valgrind, step, url, MANY_ROUNDS)
    return round((many - few) / ((MANY_ROUNDS - FEW_ROUNDS) * CONCURRENCY))


def _collected(valgrind: str, step: str, url: str, rounds: int) -> int:
    command = [
        valgrind,
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "bench.instructions",
        "--run",
        step,
        url,
        str(rounds),
    ]
    result = subprocess.run(
        command,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    match = _COLLECTED.search(result.stderr)
    if result.returncode != 0 or match is None:
        message = f"callgrind run of {step} failed:\n{result.stderr[-2000:]}"
        raise RuntimeError(message)
    return int(match.group(1))


def run_step(step: str, url: str, rounds: int) -> None:
    """Make ``rounds`` rounds of concurrent calls of one step, in this process."""
    asyncio.run(_run_step(step, url, rounds))


async def _run_step(step: str, url: str, rounds: int) -> None:
    # Imported here so that the parent process, which only starts valgrind,
    # does not load the proxies.
    import aiohttp
    from loguru import logger
    from prometheus_client import CollectorRegistry
    from pydantic import TypeAdapter

    from app.metrics import ProxyMetrics
    from app.models.user import User
    from app.proxies import UserServiceProxy
    from app.settings import ServiceSettings

    logger.remove()
    logger.add(sys.stderr, level="INFO")
    async with aiohttp.ClientSession() as session:
        users = UserServiceProxy(
            session, ServiceSettings(url=url), ProxyMetrics(CollectorRegistry())
        )
        call = step_call(step, session, users, url, TypeAdapter(User))
        for _ in range(rounds):
            await asyncio.gather(*(call() for _ in range(CONCURRENCY)))


def step_call(
    step: str, session: Any, users: Any, url: str, adapter: Any
) -> Callable[[], Awaitable[object]]:
    import aiohttp
    import yarl
    from prometheus_client import CollectorRegistry

    from app.metrics import ProxyMetrics
    from app.models.user import User
    from app.resilience.deadline import DEADLINE_HEADER
    from app.resilience.timeouts import SharedTimeouts

    user_url = url + "/users/1"
    engine = users.engine
    # No deadline, so that a slow callgrind run never rejects a call.
    request = dataclasses.replace(
        users._new_request("GET", "/users/1", None, User, None, {}, "get_user"),
        budget=None,
    )

    async def aiohttp_json() -> object:
        async with session.get(user_url) as response:
            return await response.json()

    no_timeout = aiohttp.ClientTimeout()

    async def aiohttp_no_timer() -> object:
        async with session.get(user_url, timeout=no_timeout) as response:
            return await response.json()

    async def aiohttp_validate() -> object:
        async with session.get(user_url) as response:
            return adapter.validate_json(await response.read())

    target = yarl.URL(user_url)
    timeouts = SharedTimeouts()
    metrics = ProxyMetrics(CollectorRegistry()).for_call(
        "user-service", "GET", "get_user"
    )

    async def hand_policies() -> object:
        breaker, bulkhead = engine.breaker, engine.bulkhead
        if not breaker.try_acquire():
            raise RuntimeError("circuit open")
        engine.budget.record_call()
        bulkhead.try_acquire()
        started = time.perf_counter()
        headers = {"Accept": "application/json", DEADLINE_HEADER: "2000"}
        task = timeouts.enter(2.0)
        try:
            response = await session.request(
                "GET",
                target,
                headers=headers,
                timeout=no_timeout,
                allow_redirects=False,
            )
            try:
                body = await response.read()
            finally:
                response.release()
        finally:
            if task is not None:
                timeouts.leave(task)
            bulkhead.release()
        value = adapter.validate_json(body)
        breaker.record_success()
        metrics.succeeded((time.perf_counter() - started) * 1000)
        return value

    async def engine_attempt() -> object:
        return await engine._attempt(request, None, 1, None)

    async def engine_call() -> object:
        return await engine.call(request)

    async def proxy_get_user() -> object:
        return await users.get_user("1")

    steps: dict[str, Callable[[], Awaitable[object]]] = {
        "aiohttp_json": aiohttp_json,
        "aiohttp_no_timer": aiohttp_no_timer,
        "aiohttp_validate": aiohttp_validate,
        "hand_policies": hand_policies,
        "engine_attempt": engine_attempt,
        "engine_call": engine_call,
        "proxy_get_user": proxy_get_user,
    }
    return steps[step]


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--run":
        run_step(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        raise SystemExit(0)
    raise SystemExit(main())
