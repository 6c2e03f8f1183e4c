"""Run every benchmark side by side, print the table and write the records."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.failure import measure_amplification, measure_circuit_open
from bench.fanout import measure_fanout
from bench.gateway import measure_gateways
from bench.layers import measure_layers
from bench.machine import CpuSample, describe_machine, package_versions
from bench.memory import measure_memory
from bench.overhead import measure_overhead
from bench.processes import (
    REPO_ROOT,
    BenchError,
    ServerProcess,
    free_port,
    python_module,
    run_isolated,
)
from bench.production import write_config
from bench.throughput import measure_throughput
from bench.upstreams import COUNT_PATH

__all__ = ["PARAMETERS", "SECTIONS", "main"]

SECTIONS = (
    "overhead",
    "throughput",
    "layers",
    "fanout",
    "gateway",
    "failure",
    "memory",
)
# Every bound of the run. BENCHMARKS.md lists them under "Machine and method".
PARAMETERS: dict[str, dict[str, Any]] = {
    "throughput": {
        "concurrencies": (1, 16, 64),
        "runs": 3,
        # More runs where the target is measured, for a steadier median.
        "target_concurrency": 16,
        "target_runs": 7,
        "seconds": 1.5,
        "slice_seconds": 0.5,
        "warmup": 0.5,
    },
    "layers": {"runs": 3, "seconds": 1.5, "slice_seconds": 0.5, "warmup": 0.5},
    "fanout": {"latency_ms": 50, "samples": 160, "concurrency": 4, "warmup": 12},
    "gateway": {"connections": 32, "runs": 3, "seconds": 3.0, "warmup": 1.0},
    "circuit_open": {"iterations": 20_000, "warmup": 1_000},
    "amplification": {"concurrency": 16, "seconds": 4.0, "max_calls": 200_000},
    "amplification_no_budget": {
        "concurrency": 16,
        "seconds": 2.0,
        "max_calls": 100_000,
    },
    "memory": {
        "calls": 100_000,
        "warmup": 5_000,
        "concurrency": 16,
        "max_seconds": 120.0,
    },
}
# Seconds a benchmark process may run before the run fails as hung.
_SECTION_TIMEOUT = 240.0
COMMAND = "make bench"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and return 0 when all ran, even if a target is missed."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the proxies, the aggregator and the gateway on "
        "loopback against bare aiohttp, httpx, aiohttp-retry and tenacity.",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        help="run only this section, and repeat the option for more. A partial "
        "run prints its figures but does not rewrite BENCHMARKS.md or "
        "bench/results.json",
    )
    args = parser.parse_args(argv)
    sections = tuple(args.only or SECTIONS)

    started = time.perf_counter()
    try:
        record = _run(sections)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    record["run_seconds"] = elapsed

    print(report.render_text(record))
    if sections == SECTIONS:
        report.write_records(record, REPO_ROOT)
        print("wrote BENCHMARKS.md and bench/results.json")
    print(f"benchmarks took {elapsed:.0f} s")
    return 0


def _run(sections: tuple[str, ...]) -> dict[str, Any]:
    cpu_before = CpuSample.take()
    wall_started = time.perf_counter()
    machine = describe_machine()
    details: dict[str, Any] = {}
    timings: dict[str, float] = {}
    foreign: dict[str, float] = {}
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        upstreams = _start_upstreams(stack, work, sections)
        for name in sections:
            print(f"running {name} ...", flush=True)
            section_started = time.perf_counter()
            running = [server.pid for server in upstreams.values()]
            cpu_started = CpuSample.take(running)
            details[name] = _SECTION_RUNNERS[name](work, upstreams)
            timings[name] = time.perf_counter() - section_started
            foreign[name] = cpu_started.foreign_share(
                CpuSample.take(running), timings[name], machine["nproc"]
            )
            print(
                f"  {name} took {timings[name]:.1f} s; other processes used "
                f"{foreign[name]:.0%} of the CPU meanwhile",
                flush=True,
            )
    wall = time.perf_counter() - wall_started
    machine["cpu_share_of_other_processes"] = cpu_before.foreign_share(
        CpuSample.take(), wall, machine["nproc"]
    )
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": COMMAND,
        "machine": machine,
        "versions": package_versions(),
        "parameters": {name: PARAMETERS.get(name) for name in PARAMETERS},
        "section_seconds": timings,
        "section_cpu_share_of_other_processes": foreign,
        "details": details,
    }


def _start_upstreams(
    stack: ExitStack, work: Path, sections: tuple[str, ...]
) -> dict[str, ServerProcess]:
    """Start the upstreams the sections need, each in its own process."""
    needed = {"fixed_user", "fixed_interview"}
    if "fanout" in sections:
        needed |= {"sandbox_user", "sandbox_interview"}
    if "failure" in sections:
        needed.add("outage")
    latency = str(PARAMETERS["fanout"]["latency_ms"])
    commands = {
        "fixed_user": ("fixed",),
        "fixed_interview": ("fixed",),
        "outage": ("outage",),
        "sandbox_user": ("user", "--latency-ms", latency),
        "sandbox_interview": ("interview", "--latency-ms", latency),
    }
    return {
        name: stack.enter_context(
            ServerProcess(
                name, python_module("bench.upstreams", *commands[name]), log_dir=work
            )
        )
        for name in commands
        if name in needed
    }


def _config(work: Path, name: str, user_url: str, interview_url: str) -> Path:
    return write_config(
        work / f"{name}.yml", user_url=user_url, interview_url=interview_url
    )


def _fixed_config(work: Path, upstreams: dict[str, ServerProcess]) -> Path:
    return _config(
        work, "fixed", upstreams["fixed_user"].url, upstreams["fixed_interview"].url
    )


def _overhead(work: Path, upstreams: dict[str, ServerProcess]) -> Any:
    return run_isolated(
        measure_overhead, timeout=_SECTION_TIMEOUT, log_file=work / "overhead.log"
    )


def _throughput(work: Path, upstreams: dict[str, ServerProcess]) -> Any:
    return run_isolated(
        measure_throughput,
        timeout=_SECTION_TIMEOUT,
        base_url=upstreams["fixed_user"].url,
        config=_fixed_config(work, upstreams),
        log_file=work / "throughput.log",
        **PARAMETERS["throughput"],
    )


def _layers(work: Path, upstreams: dict[str, ServerProcess]) -> Any:
    return run_isolated(
        measure_layers,
        timeout=_SECTION_TIMEOUT,
        base_url=upstreams["fixed_user"].url,
        log_file=work / "layers.log",
        **PARAMETERS["layers"],
    )


def _fanout(work: Path, upstreams: dict[str, ServerProcess]) -> Any:
    config = _config(
        work,
        "sandbox",
        upstreams["sandbox_user"].url,
        upstreams["sandbox_interview"].url,
    )
    parameters = {k: v for k, v in PARAMETERS["fanout"].items() if k != "latency_ms"}
    return run_isolated(
        measure_fanout,
        timeout=_SECTION_TIMEOUT,
        config=config,
        log_file=work / "fanout.log",
        **parameters,
    )


def _gateway(work: Path, upstreams: dict[str, ServerProcess]) -> Any:
    return measure_gateways(
        user_url=upstreams["fixed_user"].url,
        interview_url=upstreams["fixed_interview"].url,
        config=_fixed_config(work, upstreams),
        log_dir=work,
        **PARAMETERS["gateway"],
    )


def _failure(work: Path, upstreams: dict[str, ServerProcess]) -> Any:
    # Each service gets its own address: settings reject two bulkheads that
    # share one host's connection limit.
    interview = upstreams["fixed_interview"].url
    closed = f"http://127.0.0.1:{free_port()}"
    circuit = run_isolated(
        measure_circuit_open,
        timeout=_SECTION_TIMEOUT,
        config=_config(work, "closed", closed, interview),
        log_file=work / "circuit.log",
        **PARAMETERS["circuit_open"],
    )
    outage = upstreams["outage"].url
    config = _config(work, "outage", outage, interview)
    amplification = {
        name: run_isolated(
            measure_amplification,
            timeout=_SECTION_TIMEOUT,
            config=config,
            count_url=outage + COUNT_PATH,
            log_file=work / f"{name}.log",
            budget_enabled=name == "amplification",
            **PARAMETERS[name],
        )
        for name in ("amplification", "amplification_no_budget")
    }
    return {"circuit_open": circuit, **amplification}


def _memory(work: Path, upstreams: dict[str, ServerProcess]) -> Any:
    return run_isolated(
        measure_memory,
        timeout=_SECTION_TIMEOUT,
        config=_fixed_config(work, upstreams),
        log_file=work / "memory.log",
        **PARAMETERS["memory"],
    )


_SECTION_RUNNERS: dict[str, Callable[[Path, dict[str, ServerProcess]], Any]] = {
    "overhead": _overhead,
    "layers": _layers,
    "throughput": _throughput,
    "fanout": _fanout,
    "gateway": _gateway,
    "failure": _failure,
    "memory": _memory,
}
