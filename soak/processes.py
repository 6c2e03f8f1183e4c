"""Child processes of the load test: start, health-check and stop them by PID."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

__all__ = [
    "ROOT",
    "ManagedProcess",
    "SoakError",
    "app_command",
    "child_env",
    "free_port",
]

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
# Seconds between health probes while a process starts.
_PROBE_INTERVAL = 0.05


class SoakError(RuntimeError):
    """A child process failed to start or to become healthy in time."""


def app_command(*args: str) -> list[str]:
    """Build the command line of ``python -m app`` with this interpreter."""
    return [sys.executable, "-m", "app", *args]


def child_env(**extra: str) -> dict[str, str]:
    """Copy the environment without service settings, then add ``extra``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("USER_SERVICE_", "INTERVIEW_SERVICE_", "GATEWAY_"))
    }
    env.update(extra)
    return env


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class ManagedProcess:
    """One child process, its log file and the URL that returns 200 when it is up.

    ``start`` may be called again after ``stop``, which is how a service restarts
    on the same port. Output goes to ``log_path``, never to a pipe, so that a
    child never blocks on a full pipe buffer.
    """

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    health_url: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        """The PID of the running child."""
        if self.process is None:
            message = f"{self.name} has not been started"
            raise SoakError(message)
        return self.process.pid

    def start(self) -> None:
        """Start the child with its output appended to the log file."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.args,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self, *, kill_after: float = 10.0) -> int | None:
        """Send SIGTERM, then SIGKILL after ``kill_after`` seconds; return the code.

        Returns None when the child was never started.
        """
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(timeout=kill_after)

    async def stop_async(self, *, kill_after: float = 10.0) -> int | None:
        """Run ``stop`` in a thread so that the event loop keeps serving."""
        return await asyncio.to_thread(self.stop, kill_after=kill_after)

    async def wait_healthy(
        self, session: aiohttp.ClientSession, *, max_wait: float
    ) -> float:
        """Poll the health URL until it returns 200; return the seconds waited.

        Raises:
            SoakError: the child exited or did not become healthy in time.
        """
        started = time.monotonic()
        deadline = started + max_wait
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                message = (
                    f"{self.name} exited during start-up; the end of its log:\n"
                    f"{self._log_tail()}"
                )
                raise SoakError(message)
            if await _returns_ok(session, self.health_url):
                return time.monotonic() - started
            await asyncio.sleep(_PROBE_INTERVAL)
        message = (
            f"{self.name} did not answer {self.health_url} within {max_wait} s; "
            f"the end of its log:\n{self._log_tail()}"
        )
        raise SoakError(message)

    def _log_tail(self, lines: int = 10) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"(the log {self.log_path} could not be read: {exc})"
        return "\n".join(text.splitlines()[-lines:])


async def _returns_ok(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url) as response:
            await response.read()
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False
