"""A redis-server child process on a free loopback port, for the Redis cache tests."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.helpers import free_port

__all__ = ["REDIS_SERVER", "RedisServer"]

# Debian's redis-server package; .ci/run installs it when it is missing.
REDIS_SERVER = shutil.which("redis-server")
STARTUP_SECONDS = 10.0
STOP_SECONDS = 5.0
# Ports tried before giving up, in case another process takes a free port first.
START_ATTEMPTS = 3


class RedisServer:
    """One redis-server process on 127.0.0.1 without persistence.

    It is stopped by its process id, and can be paused with SIGSTOP to make it
    slow to respond, or stopped and started again on the same port.
    """

    def __init__(self, directory: Path) -> None:
        if REDIS_SERVER is None:
            message = "redis-server is not installed; .ci/run installs it"
            raise RuntimeError(message)
        self._executable = REDIS_SERVER
        self._directory = directory
        self._directory.mkdir(parents=True, exist_ok=True)
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The redis:// URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        """Process id of the running server."""
        if self._process is None:
            message = "redis-server is not running"
            raise RuntimeError(message)
        return self._process.pid

    def start(self) -> None:
        """Start the server, on a new free port unless it ran before."""
        for _ in range(START_ATTEMPTS if self.port == 0 else 1):
            port = self.port or free_port()
            if self._start_on(port):
                self.port = port
                return
        log = (self._directory / "redis.log").read_text(errors="replace")
        message = f"redis-server did not start within {STARTUP_SECONDS} s:\n{log}"
        raise RuntimeError(message)

    def stop(self) -> None:
        """Stop the server with SIGTERM, or SIGKILL if it does not exit in time."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            # A paused server handles SIGTERM only once it runs again.
            process.send_signal(signal.SIGCONT)
            process.terminate()
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def pause(self) -> None:
        """Freeze the server with SIGSTOP, so that it accepts but never responds."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run again."""
        self._signal(signal.SIGCONT)

    def _signal(self, signum: signal.Signals) -> None:
        if self._process is None or self._process.poll() is not None:
            message = "redis-server is not running"
            raise RuntimeError(message)
        self._process.send_signal(signum)

    def _start_on(self, port: int) -> bool:
        """Start the server on ``port`` and tell whether it responds to PING."""
        with (self._directory / "redis.log").open("ab") as log:
            self._process = subprocess.Popen(
                [
                    self._executable,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self._directory),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if _responds_to_ping(port):
                return True
            time.sleep(0.02)
        self.stop()
        return False


def _responds_to_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False
