"""The machine, the interpreter and the package versions behind a run."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

__all__ = ["CpuSample", "describe_machine", "package_versions"]

PACKAGES = (
    "aiohttp",
    "yarl",
    "multidict",
    "tenacity",
    "prometheus-client",
    "loguru",
    "pydantic",
    "pydantic-core",
    "dependency-injector",
    "httpx",
    "aiohttp-retry",
    "uvloop",
    "pyinstrument",
)


def describe_machine() -> dict[str, Any]:
    """Return what ``uname -m``, ``nproc`` and /proc/cpuinfo tell of the machine."""
    return {
        "arch": os.uname().machine,
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gib": round(_memory_kib() / 1024**2, 1),
        "kernel": os.uname().release,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "wrk": _wrk_version(),
        "load_average_at_start": os.getloadavg()[0],
    }


def package_versions() -> dict[str, str]:
    """Return the installed version of every package the benchmarks use."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _cpu_model() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def _memory_kib() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return 0


def _wrk_version() -> str:
    if shutil.which("wrk") is None:
        return "not installed"
    completed = subprocess.run(
        ["wrk", "-v"], capture_output=True, text=True, timeout=10, check=False
    )
    first_line = (completed.stdout or completed.stderr).strip().splitlines()
    return first_line[0] if first_line else "unknown"


@dataclass(frozen=True, slots=True)
class CpuSample:
    """CPU seconds that the machine and this process tree had used at one time."""

    machine_busy: float
    own: float

    @classmethod
    def take(cls, running: Iterable[int] = ()) -> CpuSample:
        """Read /proc/stat and the CPU time of this process tree.

        The tree is this process, its children that have been waited for, and
        the still running children whose ids are in ``running``.
        """
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
        ticks_per_second = os.sysconf("SC_CLK_TCK")
        # The first three fields are user, nice and system time, which is
        # what getrusage counts for processes. Interrupt time is left out: the
        # loopback traffic of the benchmark itself is handled there.
        busy_ticks = sum(fields[:3])
        own = sum(_process_ticks(pid) for pid in running) / ticks_per_second
        for scope in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(scope)
            own += usage.ru_utime + usage.ru_stime
        return cls(busy_ticks / ticks_per_second, own)

    def foreign_share(self, later: CpuSample, wall_seconds: float, cores: int) -> float:
        """Return the share of all cores that other processes used since this sample."""
        foreign = (later.machine_busy - self.machine_busy) - (later.own - self.own)
        return max(foreign, 0.0) / (wall_seconds * cores)


def _process_ticks(pid: int) -> int:
    """Return the user and system clock ticks of a running process, or 0."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except FileNotFoundError:
        return 0
    # The command name may contain spaces, so fields are counted after it.
    # utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
    after_name = text.rsplit(")", 1)[1].split()
    return int(after_name[11]) + int(after_name[12])
