"""Probes of one fault-matrix row: open descriptors, tasks, memory and DNS."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from types import TracebackType
from typing import Self

from aiohttp.abc import AbstractResolver, ResolveResult

__all__ = [
    "LoopbackResolver",
    "PeakRss",
    "open_fd_count",
    "other_tasks",
    "read_status_kb",
]


class LoopbackResolver(AbstractResolver):
    """Resolve ``localhost`` to 127.0.0.1 and fail every other name as unknown.

    With ``hosts: files dns`` in /etc/nsswitch.conf, getaddrinfo() asks the
    nameservers of /etc/resolv.conf about any name missing from /etc/hosts.
    RFC 6761 asks resolvers to answer the ``.invalid`` domain locally, but not
    every resolver does, so the matrix uses this one and no DNS query leaves the
    machine. It raises the ``socket.gaierror`` that getaddrinfo() raises for an
    unknown name, which aiohttp's ThreadedResolver passes on.
    """

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Return 127.0.0.1 for ``localhost``, or raise socket.gaierror."""
        if host.rstrip(".").lower() != "localhost":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
        ]

    async def close(self) -> None:
        """Do nothing, because the resolver holds no resources."""


def open_fd_count() -> int:
    """Count the open file descriptors of this process (Linux /proc)."""
    return len(os.listdir("/proc/self/fd"))


def other_tasks() -> set[asyncio.Task[object]]:
    """Return the pending tasks of the running loop, without the current one."""
    current = asyncio.current_task()
    return {task for task in asyncio.all_tasks() if task is not current}


def read_status_kb(field: str) -> int:
    """Read one memory field of /proc/self/status, such as VmRSS, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])

    message = f"{field} is missing from /proc/self/status"
    raise RuntimeError(message)


class PeakRss:
    """Measure how far the resident set size rises above its value at entry.

    Entering resets the process's peak (VmHWM) by writing 5 to
    /proc/self/clear_refs (Linux 4.0 and later), and leaving reads it, so a peak
    that lasts one synchronous step counts too. ``ru_maxrss`` of
    resource.getrusage() cannot be reset, so it cannot measure a row that runs
    after a bigger one.
    """

    def __init__(self) -> None:
        self.baseline_kb = 0
        self.peak_kb = 0

    @property
    def growth_bytes(self) -> int:
        """Peak resident set size above the value at entry, in bytes."""
        return max(self.peak_kb - self.baseline_kb, 0) * 1024

    def __enter__(self) -> Self:
        Path("/proc/self/clear_refs").write_text("5")
        self.baseline_kb = read_status_kb("VmRSS")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.peak_kb = read_status_kb("VmHWM")
