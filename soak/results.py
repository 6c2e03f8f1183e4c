"""Figures of one load test run, the verdict on them, and their JSON form."""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from soak.load import LoadRecord
from soak.procstat import ProcessSample

__all__ = [
    "Machine",
    "Restart",
    "SoakResult",
    "SoakSettings",
    "build_result",
    "count_log_levels",
    "write_json",
]

# Statuses the gateway documents for a dashboard whose user-service failed.
USER_SERVICE_FAILURE_STATUSES = frozenset({503, 504})
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class SoakSettings:
    """Options of one run, as given on the command line."""

    duration: float
    clients: int
    restart_every: float
    warmup: float
    request_timeout: float
    max_rss_growth_mb: float
    max_fd_growth: int


@dataclass(frozen=True)
class Machine:
    """The machine that ran the load test."""

    arch: str
    cpus: int
    cpu_model: str
    python: str
    kernel: str
    load_average: float
    """1-minute load average just before the services started."""

    @classmethod
    def current(cls, *, load_average: float) -> Machine:
        """Describe this machine; ``cpus`` is what the process may run on."""
        return cls(
            arch=platform.machine(),
            cpus=len(os.sched_getaffinity(0)),
            cpu_model=_cpu_model(),
            python=platform.python_version(),
            kernel=platform.release(),
            load_average=load_average,
        )


@dataclass(frozen=True)
class Restart:
    """One stop and start of interview-service, in seconds."""

    at: float
    """Offset from the start of the load when SIGTERM was sent."""
    stop_seconds: float
    """From SIGTERM until the process exited."""
    down_seconds: float
    """From SIGTERM until the new process returned 200 on /health."""
    exit_code: int | None


@dataclass(frozen=True)
class SecondStats:
    """Requests that started in one second of the run."""

    second: int
    requests: int
    non_200: int
    p99_ms: float


@dataclass
class SoakResult:
    """Everything one run measured, and the failures found in it."""

    command: str
    date: str
    """Day of the run, ISO 8601, in local time."""
    machine: Machine
    settings: SoakSettings
    load_seconds: float
    """From the first request until the last response of the measured run."""
    requests: int
    requests_per_second: float
    outcomes: dict[str, int]
    unexpected: int
    """Outcomes other than 200, 503 and 504, client-side errors included."""
    user_service_failures: int
    """503 and 504 responses, which mean that user-service failed."""
    degraded_responses: int
    degraded_parts: dict[str, int]
    malformed_bodies: int
    latency_ms: dict[str, float]
    worst_second: SecondStats | None
    restarts: list[Restart]
    samples: list[ProcessSample]
    rss_growth_mb: float
    fd_growth: int
    gateway_exit_code: int | None
    gateway_log: dict[str, int]
    proxy_counters: dict[str, dict[str, float]]
    """Counters of the gateway's /metrics after the load, by service and label."""
    client_cpu_seconds: float
    seconds: list[SecondStats] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def start_sample(self) -> ProcessSample:
        """The idle reading after the warm-up."""
        return self.samples[0]

    @property
    def end_sample(self) -> ProcessSample:
        """The idle reading after the measured load."""
        return self.samples[-1]

    @property
    def passed(self) -> bool:
        """Whether no check failed."""
        return not self.failures


def build_result(
    *,
    command: str,
    settings: SoakSettings,
    record: LoadRecord,
    restarts: Sequence[Restart],
    samples: Sequence[ProcessSample],
    gateway_exit_code: int | None,
    gateway_log: dict[str, int],
    proxy_counters: dict[str, dict[str, float]],
    client_cpu_seconds: float,
    load_average: float,
) -> SoakResult:
    """Compute the figures of a run and check them against the thresholds."""
    finished = record.finished if record.finished is not None else record.started
    load_seconds = finished - record.started
    latencies = sorted(latency for _, latency, _ in record.timeline)
    outcomes = dict(sorted(record.outcomes.items()))
    unexpected, user_failures = _count_unexpected(outcomes)
    seconds = _per_second(record)
    start, end = samples[0], samples[-1]
    result = SoakResult(
        command=command,
        date=datetime.date.today().isoformat(),
        machine=Machine.current(load_average=load_average),
        settings=settings,
        load_seconds=load_seconds,
        requests=record.requests,
        requests_per_second=record.requests / load_seconds if load_seconds else 0.0,
        outcomes=outcomes,
        unexpected=unexpected,
        user_service_failures=user_failures,
        degraded_responses=record.degraded_responses,
        degraded_parts=dict(record.degraded_parts.most_common()),
        malformed_bodies=record.malformed_bodies,
        latency_ms={
            "p50": _percentile(latencies, 0.50) * 1000,
            "p99": _percentile(latencies, 0.99) * 1000,
            "max": (latencies[-1] if latencies else 0.0) * 1000,
        },
        worst_second=max(seconds, key=lambda stats: stats.p99_ms, default=None),
        restarts=list(restarts),
        samples=list(samples),
        rss_growth_mb=end.rss_mb - start.rss_mb,
        fd_growth=end.fds - start.fds,
        gateway_exit_code=gateway_exit_code,
        gateway_log=gateway_log,
        proxy_counters=proxy_counters,
        client_cpu_seconds=client_cpu_seconds,
        seconds=seconds,
    )
    result.failures = _find_failures(result)
    return result


def count_log_levels(path: Path) -> dict[str, int]:
    """Count a log file's lines by level, and its tracebacks and unclosed warnings.

    Lines follow the format of ``app.logs``: date, time, level, message.
    """
    counts = dict.fromkeys((*_LOG_LEVELS, "Traceback", "Unclosed"), 0)
    if not path.exists():
        return counts
    with path.open(encoding="utf-8", errors="replace") as log:
        for line in log:
            words = line.split(maxsplit=3)
            if len(words) >= 3 and words[2] in _LOG_LEVELS:
                counts[words[2]] += 1
            if line.startswith("Traceback"):
                counts["Traceback"] += 1
            if "Unclosed" in line:
                counts["Unclosed"] += 1
    return counts


def write_json(result: SoakResult, path: Path) -> None:
    """Write the result, every sample and per-second figure included, as JSON."""
    data: dict[str, Any] = asdict(result)
    data["passed"] = result.passed
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _count_unexpected(outcomes: dict[str, int]) -> tuple[int, int]:
    unexpected = 0
    user_failures = 0
    for outcome, count in outcomes.items():
        if outcome == "200":
            continue
        if outcome.isdigit() and int(outcome) in USER_SERVICE_FAILURE_STATUSES:
            user_failures += count
        else:
            unexpected += count
    return unexpected, user_failures


def _find_failures(result: SoakResult) -> list[str]:
    settings = result.settings
    failures: list[str] = []
    if result.unexpected:
        failures.append(f"{result.unexpected} outcomes other than 200, 503 and 504")
    if result.user_service_failures:
        failures.append(
            f"{result.user_service_failures} responses 503 or 504, although "
            "user-service stayed up"
        )
    if result.malformed_bodies:
        failures.append(f"{result.malformed_bodies} 200 bodies are not dashboards")
    if result.rss_growth_mb > settings.max_rss_growth_mb:
        failures.append(
            f"RSS grew {result.rss_growth_mb:.1f} MiB, more than "
            f"{settings.max_rss_growth_mb:g} MiB"
        )
    if result.fd_growth > settings.max_fd_growth:
        failures.append(
            f"open descriptors grew by {result.fd_growth}, more than "
            f"{settings.max_fd_growth}"
        )
    if result.gateway_exit_code != 0:
        failures.append(f"the gateway exited with {result.gateway_exit_code}")
    if result.gateway_log["Traceback"] or result.gateway_log["Unclosed"]:
        failures.append("the gateway log has tracebacks or unclosed resources")
    return failures


def _per_second(record: LoadRecord) -> list[SecondStats]:
    latencies: defaultdict[int, list[float]] = defaultdict(list)
    non_200: defaultdict[int, int] = defaultdict(int)
    for offset, latency, status in record.timeline:
        second = int(offset)
        latencies[second].append(latency)
        if status != 200:
            non_200[second] += 1
    return [
        SecondStats(
            second=second,
            requests=len(values),
            non_200=non_200[second],
            p99_ms=_percentile(sorted(values), 0.99) * 1000,
        )
        for second, values in sorted(latencies.items())
    ]


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of an ascending sequence, 0 when empty."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return "unknown"
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"
