"""The command line, run as a user would: separate processes over loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 20.0
STOP_SECONDS = 10.0


def command(*args: str) -> list[str]:
    """Build the command line of ``python -m app`` with these arguments."""
    return [sys.executable, "-m", "app", *args]


def child_env(**extra: str) -> dict[str, str]:
    """Copy the environment without service settings, plus ``extra``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(
            ("USER_SERVICE_", "INTERVIEW_SERVICE_", "GATEWAY_", "CACHE_")
        )
    }
    env.update(extra)
    return env


def fetch(url: str) -> tuple[int, Any]:
    """GET a loopback URL and return its status and decoded JSON body."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_until_up(url: str, process: subprocess.Popen[str]) -> None:
    """Poll ``url`` until it responds; fail if the process exits or time runs out."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"process exited early with code {process.returncode}")
        try:
            fetch(url)
        except (OSError, ValueError):
            time.sleep(0.1)
            continue
        return
    pytest.fail(f"{url} did not answer within {STARTUP_SECONDS} s")


@contextmanager
def running(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """Run a command in the background and stop it with SIGTERM at the end."""
    process = subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def sandbox_process(latency_ms: int = 0) -> Iterator[tuple[int, int]]:
    """Run ``python -m app sandbox`` on free ports and yield those ports."""
    user_port, interview_port = free_port(), free_port()
    args = command(
        "sandbox",
        "--user-port",
        str(user_port),
        "--interview-port",
        str(interview_port),
        "--latency-ms",
        str(latency_ms),
    )
    with running(args, child_env()) as process:
        wait_until_up(f"http://127.0.0.1:{user_port}/health", process)
        wait_until_up(f"http://127.0.0.1:{interview_port}/health", process)
        yield user_port, interview_port


def service_env(user_port: int, interview_port: int) -> dict[str, str]:
    """Point both services at the sandbox on these ports."""
    return child_env(
        USER_SERVICE_URL=f"http://127.0.0.1:{user_port}",
        INTERVIEW_SERVICE_URL=f"http://127.0.0.1:{interview_port}",
    )


class TestHelp:
    """Every command documents itself."""

    @pytest.mark.parametrize(
        "args", [[], ["serve"], ["sandbox"], ["dashboard"], ["demo"]]
    )
    def test_help_exits_zero(self, args: list[str]) -> None:
        """--help prints usage and exits with 0."""
        result = subprocess.run(
            command(*args, "--help"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

        assert result.returncode == 0
        assert "usage:" in result.stdout


class TestCommands:
    """serve, sandbox and dashboard as separate processes."""

    def test_dashboard_prints_json(self) -> None:
        """The dashboard command prints the seeded user's dashboard."""
        with sandbox_process() as (user_port, interview_port):
            result = subprocess.run(
                command("dashboard", "1"),
                cwd=ROOT,
                env=service_env(user_port, interview_port),
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )

        assert result.returncode == 0
        assert json.loads(result.stdout)["user"]["id"] == "1"

    def test_dashboard_of_unknown_user_exits_one(self) -> None:
        """An unknown user prints an error naming user-service and exits with 1."""
        with sandbox_process() as (user_port, interview_port):
            result = subprocess.run(
                command("dashboard", "no-such-user"),
                cwd=ROOT,
                env=service_env(user_port, interview_port),
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )

        assert result.returncode == 1
        assert "user-service" in result.stderr

    def test_bad_url_setting_exits_two(self) -> None:
        """An invalid USER_SERVICE_URL stops the command with a one-line error."""
        result = subprocess.run(
            command("dashboard", "1"),
            cwd=ROOT,
            env=child_env(USER_SERVICE_URL="not a url"),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

        assert result.returncode == 2
        assert "USER_SERVICE_URL" in result.stderr
        assert "Traceback" not in result.stderr

    def test_serve_answers_and_stops_cleanly_on_sigterm(self) -> None:
        """The gateway serves a dashboard and exits with 0, without warnings."""
        port = free_port()
        with sandbox_process() as (user_port, interview_port):
            env = service_env(user_port, interview_port)
            with running(command("serve", "--port", str(port)), env) as gateway:
                wait_until_up(f"http://127.0.0.1:{port}/health/live", gateway)
                status, body = fetch(f"http://127.0.0.1:{port}/api/dashboard/1")
                gateway.send_signal(signal.SIGTERM)
                code = gateway.wait(timeout=STOP_SECONDS)
                assert gateway.stderr is not None
                stderr = gateway.stderr.read()

        assert status == 200
        assert body["user"]["id"] == "1"
        assert code == 0
        assert "Unclosed" not in stderr
        assert "Traceback" not in stderr

    def test_demo_prints_a_working_url(self) -> None:
        """The demo command prints a dashboard URL that returns 200."""
        port, user_port, interview_port = free_port(), free_port(), free_port()
        args = command(
            "demo",
            "--port",
            str(port),
            "--user-port",
            str(user_port),
            "--interview-port",
            str(interview_port),
        )
        with running(args, child_env()) as demo:
            assert demo.stdout is not None
            first_line = demo.stdout.readline()
            url = first_line.rsplit(" ", 1)[-1].strip()
            wait_until_up(url, demo)
            status, body = fetch(url)
            demo.send_signal(signal.SIGINT)
            code = demo.wait(timeout=STOP_SECONDS)

        assert url.startswith(f"http://127.0.0.1:{port}/api/dashboard/")
        assert status == 200
        assert "user" in body
        assert code == 0
