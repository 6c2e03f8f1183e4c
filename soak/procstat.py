"""Resident memory, file descriptors and TCP connections of a process, from /proc."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ProcessSample", "sample_process"]

# TCP states in hex, as /proc/net/tcp writes them; the kernel defines them in
# include/net/tcp_states.h.
_TCP_ESTABLISHED = "01"
_TCP_LISTEN = "0A"
_TCP_STATE_NAMES = {
    "02": "syn_sent",
    "03": "syn_recv",
    "04": "fin_wait1",
    "05": "fin_wait2",
    "06": "time_wait",
    "07": "close",
    "08": "close_wait",
    "09": "last_ack",
    "0B": "closing",
}


@dataclass(frozen=True)
class ProcessSample:
    """One reading of a process's memory and descriptors."""

    label: str
    elapsed: float
    """Seconds since the measured load started; negative before it."""
    rss_kb: int
    fds: int
    sockets: int
    cpu_seconds: float
    """User and system CPU time the process has used since it started."""
    load_average: float
    """The machine's 1-minute load average, which shows other work on the CPUs."""
    connections: dict[str, int] = field(default_factory=dict)
    """TCP connections by peer name, and state when not established."""

    @property
    def rss_mb(self) -> float:
        """Resident set size in MiB."""
        return self.rss_kb / 1024


def sample_process(
    pid: int, *, label: str, elapsed: float, peers: Mapping[str, int]
) -> ProcessSample:
    """Read VmRSS, the open descriptors and their TCP connections of ``pid``.

    ``peers`` maps a name to a port: a connection counts under that name when its
    remote port is that port, or, for the process's own listening port, its local
    port. Other connections count under ``other``, and a connection that is not
    established also names its state, as in ``interview-service close_wait``.
    """
    rss_kb = _read_rss_kb(pid)
    cpu_seconds = _read_cpu_seconds(pid)
    socket_inodes = _socket_inodes(pid)
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    connections = _count_connections(socket_inodes, peers)
    return ProcessSample(
        label=label,
        elapsed=elapsed,
        rss_kb=rss_kb,
        fds=fds,
        sockets=len(socket_inodes),
        cpu_seconds=cpu_seconds,
        load_average=os.getloadavg()[0],
        connections=connections,
    )


def _read_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    message = f"/proc/{pid}/status has no VmRSS line"
    raise ValueError(message)


def _read_cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name in brackets may contain spaces, so fields are counted after
    # it. utime and stime are fields 14 and 15 of the whole line (proc(5)).
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for entry in fd_dir.iterdir():
        try:
            target = os.readlink(entry)
        except FileNotFoundError:
            # The descriptor was closed between listing and reading it.
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _count_connections(inodes: set[str], peers: Mapping[str, int]) -> dict[str, int]:
    names_by_port = {port: name for name, port in peers.items()}
    counts: Counter[str] = Counter()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            columns = line.split()
            if columns[9] not in inodes:
                continue
            state = columns[3]
            if state == _TCP_LISTEN:
                counts["listening"] += 1
                continue
            local_port = int(columns[1].rsplit(":", 1)[1], 16)
            remote_port = int(columns[2].rsplit(":", 1)[1], 16)
            name = names_by_port.get(remote_port) or names_by_port.get(local_port)
            key = name or "other"
            if state != _TCP_ESTABLISHED:
                key = f"{key} {_TCP_STATE_NAMES.get(state, state)}"
            counts[key] += 1
    return dict(sorted(counts.items()))
