"""Start, isolate and stop the processes of a benchmark run."""

from __future__ import annotations

import multiprocessing
import os
import select
import socket
import subprocess
import sys
import time
import traceback
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "READY_PREFIX",
    "REPO_ROOT",
    "BenchError",
    "ServerProcess",
    "free_port",
    "python_module",
    "run_isolated",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
# A server started with port 0 prints this and its port once it listens.
READY_PREFIX = "BENCH_PORT"
_STOP_TIMEOUT = 5.0


class BenchError(RuntimeError):
    """A benchmark could not run, so the run exits non-zero."""


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """A server in its own process, stopped by its process id on exit.

    The server either prints ``BENCH_PORT <port>`` on stdout once it listens
    (``port=None``), or listens on ``port`` and responds 200 on ``ready_path``.
    """

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        *,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        ready_path: str = "/",
        start_timeout: float = 30.0,
    ) -> None:
        self.name = name
        self._args = list(args)
        self._log_path = log_dir / f"{name}.log"
        self._env = {**os.environ, **(env or {})}
        self._ready_path = ready_path
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self.port = port

    @property
    def url(self) -> str:
        """Base URL of the server on loopback."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        """Process id of the server."""
        if self._process is None:
            message = f"{self.name} has not been started"
            raise BenchError(message)
        return self._process.pid

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server and wait until it accepts requests."""
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._args,
                cwd=REPO_ROOT,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if self.port is None else log,
                stderr=log,
            )
        try:
            if self.port is None:
                self.port = self._read_port()
            else:
                self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server with SIGTERM, then SIGKILL if it still runs after 5 s."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(_STOP_TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()

    def _read_port(self) -> int:
        process = self._require_process()
        assert process.stdout is not None
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            readable, _, _ = select.select([process.stdout], [], [], 0.2)
            if readable:
                line = process.stdout.readline().decode().strip()
                if line.startswith(READY_PREFIX):
                    return int(line.split()[1])
                if not line and process.poll() is not None:
                    break
            elif process.poll() is not None:
                break
        raise self._start_error()

    def _wait_ready(self) -> None:
        process = self._require_process()
        deadline = time.monotonic() + self._start_timeout
        url = self.url + self._ready_path
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(url, timeout=1.0) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise self._start_error()

    def _require_process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            message = f"{self.name} has not been started"
            raise BenchError(message)
        return self._process

    def _start_error(self) -> BenchError:
        tail = self._log_path.read_text(errors="replace")[-2000:]
        message = (
            f"{self.name} did not start within {self._start_timeout} s; "
            f"the end of its log {self._log_path}:\n{tail}"
        )
        return BenchError(message)


def _child_main(conn: Connection, func: Callable[..., Any], kwargs: Any) -> None:
    try:
        result = func(**kwargs)
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    else:
        conn.send(("ok", result))
    finally:
        conn.close()


def run_isolated(func: Callable[..., Any], *, timeout: float, **kwargs: Any) -> Any:
    """Run ``func(**kwargs)`` in a new process and return its result.

    The function runs alone in the new process. No server or load generator
    shares its event loop, and nothing that a previous benchmark left in memory
    counts against it.

    Raises:
        BenchError: the function raised, or did not return within ``timeout`` s.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_child_main, args=(sender, func, kwargs), name=func.__name__
    )
    process.start()
    sender.close()
    try:
        if not receiver.poll(timeout):
            message = f"{func.__name__} did not finish within {timeout:.0f} s"
            raise BenchError(message)
        status, payload = receiver.recv()
    except EOFError:
        message = f"{func.__name__} exited with code {process.exitcode} and no result"
        raise BenchError(message) from None
    finally:
        receiver.close()
        process.join(_STOP_TIMEOUT)
        if process.is_alive():
            process.kill()
            process.join(_STOP_TIMEOUT)
    if status == "error":
        message = f"{func.__name__} failed in its process:\n{payload}"
        raise BenchError(message)
    return payload


def python_module(module: str, *args: str) -> list[str]:
    """Return the command line that runs ``python -m module args``."""
    return [sys.executable, "-m", module, *args]
