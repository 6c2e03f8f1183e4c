"""Command line of the load test: start the services, run the load, report."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from app.sandbox import seeded_user_ids
from soak.load import LoadRecord, run_clients
from soak.metrics import fetch_proxy_counters
from soak.processes import (
    LOOPBACK,
    ROOT,
    ManagedProcess,
    SoakError,
    app_command,
    child_env,
    free_port,
)
from soak.procstat import ProcessSample, sample_process
from soak.report import format_docs_section, format_table, update_docs
from soak.results import (
    Restart,
    SoakSettings,
    build_result,
    count_log_levels,
    write_json,
)

__all__ = ["main"]

# Seconds a child may take after it starts until its health URL returns 200.
STARTUP_TIMEOUT = 20.0
# Seconds of idleness before the start and end readings, so that connections of
# the finished clients are closed.
SETTLE_SECONDS = 1.0
# Readings of RSS and descriptors taken while the load runs.
LOAD_SAMPLES = 5


@dataclass
class Services:
    """The three child processes and their ports."""

    user: ManagedProcess
    interview: ManagedProcess
    gateway: ManagedProcess
    user_port: int
    interview_port: int
    gateway_port: int

    @property
    def gateway_url(self) -> str:
        """Base URL of the gateway."""
        return f"http://{LOOPBACK}:{self.gateway_port}"

    @property
    def peers(self) -> dict[str, int]:
        """Ports that identify the gateway's TCP connections, by connection name."""
        return {
            "user-service": self.user_port,
            "interview-service": self.interview_port,
            "clients": self.gateway_port,
        }


@dataclass
class Measurement:
    """Observations of a run, made before the processes stopped."""

    record: LoadRecord
    restarts: list[Restart]
    samples: list[ProcessSample]
    proxy_counters: dict[str, dict[str, float]]
    client_cpu_seconds: float
    """CPU time of this process, the clients, from the start to the end reading."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the load test; return 0 if it passed, 1 if it failed, 2 on set-up errors."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = _build_parser().parse_args(arguments)
    settings = SoakSettings(
        duration=options.duration,
        clients=options.clients,
        restart_every=options.restart_every,
        warmup=options.warmup,
        request_timeout=options.request_timeout,
        max_rss_growth_mb=options.max_rss_growth_mb,
        max_fd_growth=options.max_fd_growth,
    )
    command = shlex.join(["python", "-m", "soak", *arguments])
    if not arguments:
        command = "make soak"

    load_average = os.getloadavg()[0]
    with ExitStack() as stack:
        log_dir = options.log_dir
        if log_dir is None:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        log_dir.mkdir(parents=True, exist_ok=True)
        services = _build_services(log_dir)
        exit_codes: dict[str, int | None] = {}
        try:
            for service in (services.user, services.interview, services.gateway):
                service.start()
            measurement = asyncio.run(_measure(services, settings))
        except SoakError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            # The gateway stops first, so that no upstream disappears while it serves.
            for service in (services.gateway, services.interview, services.user):
                exit_codes[service.name] = _stop_reporting_errors(service)
        gateway_log = count_log_levels(services.gateway.log_path)

    result = build_result(
        command=command,
        settings=settings,
        record=measurement.record,
        restarts=measurement.restarts,
        samples=measurement.samples,
        gateway_exit_code=exit_codes[services.gateway.name],
        gateway_log=gateway_log,
        proxy_counters=measurement.proxy_counters,
        client_cpu_seconds=measurement.client_cpu_seconds,
        load_average=load_average,
    )
    print(format_table(result))
    write_json(result, options.results)
    print(f"\nwrote {options.results}")
    if options.docs is not None:
        update_docs(options.docs, format_docs_section(result))
        print(f"updated the Load section of {options.docs}")
    return 0 if result.passed else 1


def _stop_reporting_errors(service: ManagedProcess) -> int | None:
    """Stop a child; print, rather than raise, a failure so the others still stop."""
    try:
        return service.stop()
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"error: failed to stop {service.name}: {exc}", file=sys.stderr)
        return None


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m soak",
        description="Load the gateway with concurrent dashboard requests while "
        "interview-service restarts, and check statuses, RSS and descriptors.",
    )
    parser.add_argument(
        "--duration",
        type=_positive_float,
        default=60.0,
        help="seconds during which clients start requests (default: 60)",
    )
    parser.add_argument(
        "--clients",
        type=_positive_int,
        default=200,
        help="concurrent client tasks (default: 200)",
    )

    parser.add_argument(
        "--restart-every",
        type=_positive_float,
        default=5.0,
        help="seconds between restarts of interview-service (default: 5)",
    )
    parser.add_argument(
        "--warmup",
        type=_positive_float,
        default=2.0,
        help="seconds of load before the start reading, not counted (default: 2)",
    )
    parser.add_argument(
        "--request-timeout",
        type=_positive_float,
        default=10.0,
        help="seconds a client waits for one response (default: 10)",
    )

    parser.add_argument(
        "--max-rss-growth-mb",
        type=float,
        default=20.0,
        help="largest accepted growth of the gateway's RSS in MiB (default: 20)",
    )
    parser.add_argument(
        "--max-fd-growth",
        type=int,
        default=20,
        help="largest accepted growth of the gateway's open descriptors (default: 20)",
    )

    parser.add_argument(
        "--results",
        type=Path,
        default=ROOT / "soak" / "results.json",
        help="JSON file for every figure (default: soak/results.json)",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=ROOT / "docs" / "faults.md",
        help="Markdown file whose Load section is replaced (default: docs/faults.md)",
    )
    parser.add_argument(
        "--no-docs",
        dest="docs",
        action="store_const",
        const=None,
        help="leave docs/faults.md unchanged, for trial runs",
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        help="directory that keeps the logs of the three processes "
        "(default: a temporary directory, removed at the end)",
    )
    return parser


def _build_services(log_dir: Path) -> Services:
    ports = (free_port(), free_port(), free_port())
    user_port, interview_port, gateway_port = (str(port) for port in ports)
    sandbox = ["sandbox", "--user-port", user_port, "--interview-port", interview_port]
    gateway_env = child_env(
        USER_SERVICE_URL=f"http://{LOOPBACK}:{user_port}",
        INTERVIEW_SERVICE_URL=f"http://{LOOPBACK}:{interview_port}",
    )
    return Services(
        user=ManagedProcess(
            name="user-service",
            args=app_command(*sandbox, "--services", "user"),
            env=child_env(),
            log_path=log_dir / "user-service.log",
            health_url=f"http://{LOOPBACK}:{user_port}/health",
        ),
        interview=ManagedProcess(
            name="interview-service",
            args=app_command(*sandbox, "--services", "interview"),
            env=child_env(),
            log_path=log_dir / "interview-service.log",
            health_url=f"http://{LOOPBACK}:{interview_port}/health",
        ),
        gateway=ManagedProcess(
            name="gateway",
            args=app_command("serve", "--host", LOOPBACK, "--port", gateway_port),
            env=gateway_env,
            log_path=log_dir / "gateway.log",
            health_url=f"http://{LOOPBACK}:{gateway_port}/health/live",
        ),
        user_port=ports[0],
        interview_port=ports[1],
        gateway_port=ports[2],
    )


async def _measure(services: Services, settings: SoakSettings) -> Measurement:
    user_ids = seeded_user_ids()
    probe_timeout = aiohttp.ClientTimeout(total=1.0)
    async with aiohttp.ClientSession(timeout=probe_timeout) as health:
        for service in (services.user, services.interview, services.gateway):
            await service.wait_healthy(health, max_wait=STARTUP_TIMEOUT)

        await run_clients(
            services.gateway_url,
            user_ids,
            clients=settings.clients,
            duration=settings.warmup,
            request_timeout=settings.request_timeout,
        )
        await asyncio.sleep(SETTLE_SECONDS)
        samples = [_sample(services, "start", elapsed=-SETTLE_SECONDS)]
        client_cpu = time.process_time()

        start = time.monotonic()
        restarts: list[Restart] = []
        try:
            async with asyncio.TaskGroup() as group:
                load = group.create_task(
                    run_clients(
                        services.gateway_url,
                        user_ids,
                        clients=settings.clients,
                        duration=settings.duration,
                        request_timeout=settings.request_timeout,
                    )
                )
                group.create_task(
                    _restart_periodically(
                        services.interview, health, settings, start, restarts
                    )
                )
                group.create_task(
                    _sample_periodically(services, settings, start, samples)
                )
        except ExceptionGroup as errors:
            raise _first_soak_error(errors) from errors
        record = load.result()

        await asyncio.sleep(SETTLE_SECONDS)
        elapsed = time.monotonic() - start
        samples.append(_sample(services, "end", elapsed=elapsed))
        client_cpu = time.process_time() - client_cpu
        metrics_url = f"{services.gateway_url}/metrics"
        counters = await fetch_proxy_counters(health, metrics_url)
    return Measurement(
        record=record,
        restarts=restarts,
        samples=samples,
        proxy_counters=counters,
        client_cpu_seconds=client_cpu,
    )


async def _restart_periodically(
    service: ManagedProcess,
    health: aiohttp.ClientSession,
    settings: SoakSettings,
    start: float,
    restarts: list[Restart],
) -> None:
    """Stop and start ``service`` every ``restart_every`` seconds of the load.

    A restart that takes longer than the interval delays the next one; none
    begins after the load's duration.
    """
    max_restarts = int(settings.duration / settings.restart_every) + 1
    for number in range(1, max_restarts + 1):
        planned = start + number * settings.restart_every
        if planned >= start + settings.duration:
            break
        await asyncio.sleep(max(0.0, planned - time.monotonic()))

        began = time.monotonic()
        exit_code = await service.stop_async()
        stopped = time.monotonic()
        service.start()
        await service.wait_healthy(health, max_wait=STARTUP_TIMEOUT)

        restarts.append(
            Restart(
                at=began - start,
                stop_seconds=stopped - began,
                down_seconds=time.monotonic() - began,
                exit_code=exit_code,
            )
        )


async def _sample_periodically(
    services: Services,
    settings: SoakSettings,
    start: float,
    samples: list[ProcessSample],
) -> None:
    """Read the gateway's RSS and descriptors at even intervals of the load."""
    interval = settings.duration / (LOAD_SAMPLES + 1)
    for number in range(1, LOAD_SAMPLES + 1):
        await asyncio.sleep(max(0.0, start + number * interval - time.monotonic()))
        elapsed = time.monotonic() - start
        samples.append(_sample(services, "under load", elapsed=elapsed))


def _sample(services: Services, label: str, *, elapsed: float) -> ProcessSample:
    return sample_process(
        services.gateway.pid, label=label, elapsed=elapsed, peers=services.peers
    )


def _first_soak_error(errors: ExceptionGroup) -> BaseException:
    """Return the first SoakError of a task group's failure, else the group."""
    matched = errors.subgroup(SoakError)
    if matched is None:
        return errors
    return matched.exceptions[0]


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        message = f"must be a number above 0, got {text!r}"
        raise argparse.ArgumentTypeError(message)
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        message = f"must be a whole number of at least 1, got {text!r}"
        raise argparse.ArgumentTypeError(message)
    return value
