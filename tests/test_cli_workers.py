"""serve --workers: gunicorn processes over loopback whose /metrics add up."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from app.metrics import MULTIPROC_DIR_VARIABLE
from app.sandbox import seeded_user_ids
from tests.helpers import free_port, write_counter
from tests.test_cli import (
    ROOT,
    STARTUP_SECONDS,
    STOP_SECONDS,
    command,
    fetch,
    sandbox_process,
    service_env,
    wait_until_up,
)

WORKERS = 2
DASHBOARDS = 100
# Limit on the batches of DASHBOARDS loaded until every worker has served one.
MAX_BATCHES = 10
SCRAPES = 5
# Each dashboard makes one get_user call, and one get_user_stats and one
# get_user_interviews call, with the cache off.
CLIENT_THREADS = 8
GET_USER_SUCCESS = {
    "service": "user-service",
    "operation": "get_user",
    "status": "success",
}
USER_GET_SUCCESS = {"service": "user-service", "method": "GET", "status": "success"}
INTERVIEW_GET_SUCCESS = {
    "service": "interview-service",
    "operation": "get_user_interviews",
    "status": "success",
}


def gateway_env(user_port: int, interview_port: int, **extra: str) -> dict[str, str]:
    """Point the gateway at the sandbox with the read cache off.

    Without the cache every dashboard reaches the upstreams, so the counts are
    exact although the sandbox seeds fewer users than there are requests.
    """
    env = service_env(user_port, interview_port)
    env.pop(MULTIPROC_DIR_VARIABLE, None)
    env["USER_SERVICE_CACHE_ENABLED"] = "false"
    env["INTERVIEW_SERVICE_CACHE_ENABLED"] = "false"
    env.update(extra)
    return env


def child_pids(parent: int) -> set[int]:
    """Return the live processes whose parent is ``parent``, zombies left out."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # The command name in brackets may hold spaces, so split after its ')'.
        state, ppid = text.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == parent and state != "Z":
            pids.add(int(stat.parent.name))
    return pids


def wait_for_workers(master: int, *, replaced: set[int] | None = None) -> set[int]:
    """Wait until ``master`` has WORKERS children, none of them in ``replaced``."""
    excluded = replaced or set()
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        pids = child_pids(master)
        if len(pids) == WORKERS and not pids & excluded:
            return pids
        time.sleep(0.05)
    pytest.fail(f"gunicorn {master} did not have {WORKERS} workers in time")


@contextmanager
def gateway_process(
    port: int, env: dict[str, str], log: Path, *extra: str
) -> Iterator[subprocess.Popen[str]]:
    """Run ``serve --workers 2``; stop the master and every worker seen, by PID."""
    seen: set[int] = set()
    with log.open("w") as output:
        process = subprocess.Popen(
            command("serve", "--port", str(port), "--workers", str(WORKERS), *extra),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health/live", process)
        seen |= wait_for_workers(process.pid)
        yield process
    finally:
        seen |= child_pids(process.pid)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for pid in seen:
            # A worker outlives a master killed with SIGKILL for up to a second.
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextmanager
def gateway_with_sandbox(
    tmp_path: Path, metrics_dir: Path | None = None, **variables: str
) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """Run the sandbox and ``serve --workers 2``; yield the gateway's port and master.

    Without ``metrics_dir`` the gateway makes its own private directory.
    ``variables`` are added to the gateway's environment.
    """
    port = free_port()
    with sandbox_process() as (user_port, interview_port):
        env = {**gateway_env(user_port, interview_port), **variables}
        if metrics_dir is not None:
            env[MULTIPROC_DIR_VARIABLE] = str(metrics_dir)
        with gateway_process(port, env, tmp_path / "gateway.log") as gateway:
            yield port, gateway


def load_dashboards(port: int, count: int) -> list[int]:
    """Request ``count`` dashboards from a few threads and return their statuses."""
    user_ids = itertools.islice(itertools.cycle(seeded_user_ids()), count)
    urls = [f"http://127.0.0.1:{port}/api/dashboard/{user}" for user in user_ids]
    with ThreadPoolExecutor(max_workers=CLIENT_THREADS) as pool:
        return [status for status, _ in pool.map(fetch, urls)]


def scrape(port: int, name: str, labels: dict[str, str]) -> float:
    """Scrape /metrics once and add up the samples of ``name`` with ``labels``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def user_calls_of(metrics_dir: Path, pid: int) -> float:
    """Return the get_user successes in one process's counter file."""
    path = metrics_dir / f"counter_{pid}.db"
    total = 0.0
    for family in MultiProcessCollector.merge([str(path)]):  # type: ignore[no-untyped-call]
        for sample in family.samples:
            if (
                sample.name == "service_calls_total"
                and GET_USER_SUCCESS.items() <= sample.labels.items()
            ):
                total += sample.value
    return total


class TestWorkerMetrics:
    """Every scrape shows the totals of all workers, never less than before."""

    def test_scrapes_show_exact_totals(self, tmp_path: Path) -> None:
        """Every scrape counts one get_user call per dashboard over 2 workers."""
        metrics_dir = tmp_path / "metrics"
        metrics_dir.mkdir()
        # A file of an earlier run, which the start must delete.
        write_counter(metrics_dir, 1000)
        stale_files = sorted(metrics_dir.glob("*.db"))
        with gateway_with_sandbox(tmp_path, metrics_dir) as (port, gateway):
            left_over = [path for path in stale_files if path.exists()]
            # The workers share one listening socket, and the kernel may hand a
            # busy machine's connections to one of them, so load goes on in
            # batches until both have served some.
            statuses: list[int] = []
            per_worker: list[float] = []
            for _ in range(MAX_BATCHES):
                statuses += load_dashboards(port, DASHBOARDS)
                per_worker = [
                    user_calls_of(metrics_dir, pid) for pid in child_pids(gateway.pid)
                ]
                if len([calls for calls in per_worker if calls > 0]) == WORKERS:
                    break
            loaded = len(statuses)
            user_calls = [
                scrape(port, "service_calls_total", GET_USER_SUCCESS)
                for _ in range(SCRAPES)
            ]
            user_gets = scrape(port, "service_calls_total", USER_GET_SUCCESS)
            interview_calls = scrape(port, "service_calls_total", INTERVIEW_GET_SUCCESS)

        assert len(stale_files) == 1
        assert left_over == []
        assert statuses == [200] * loaded
        assert user_calls == [loaded] * SCRAPES
        # get_user and get_user_stats, both GETs of user-service.
        assert user_gets == 2 * loaded
        assert interview_calls == loaded
        assert sum(per_worker) == loaded
        # Both workers served dashboards, so the scrapes added up two processes.
        assert len([calls for calls in per_worker if calls > 0]) == WORKERS

    def test_killed_worker_keeps_its_counts(self, tmp_path: Path) -> None:
        """After a worker is killed and replaced, totals do not go down."""
        metrics_dir = tmp_path / "metrics"
        with gateway_with_sandbox(tmp_path, metrics_dir) as (port, gateway):
            statuses = load_dashboards(port, DASHBOARDS)
            before = scrape(port, "service_calls_total", GET_USER_SUCCESS)
            workers = child_pids(gateway.pid)
            victim = max(workers, key=lambda pid: user_calls_of(metrics_dir, pid))
            victim_calls = user_calls_of(metrics_dir, victim)

            os.kill(victim, signal.SIGKILL)
            wait_for_workers(gateway.pid, replaced={victim})
            after = [
                scrape(port, "service_calls_total", GET_USER_SUCCESS)
                for _ in range(SCRAPES)
            ]
            circuit = scrape(port, "service_circuit_state", {})
            live_gauge_kept = (metrics_dir / f"gauge_livemax_{victim}.db").exists()
            counter_kept = (metrics_dir / f"counter_{victim}.db").exists()
            load_dashboards(port, 10)
            later = scrape(port, "service_calls_total", GET_USER_SUCCESS)

        assert statuses == [200] * DASHBOARDS
        assert victim_calls > 0
        assert before == DASHBOARDS
        assert after == [before] * SCRAPES
        assert circuit == 0
        assert not live_gauge_kept
        assert counter_kept
        assert later == before + 10


class TestWorkerLifecycle:
    """Start-up checks and a graceful stop of the gunicorn master."""

    def test_sigterm_stops_workers_and_removes_dir(self, tmp_path: Path) -> None:
        """SIGTERM ends master and workers with 0 and removes the private dir."""
        with gateway_with_sandbox(tmp_path) as (port, gateway):
            status, body = fetch(f"http://127.0.0.1:{port}/api/dashboard/1")
            workers = child_pids(gateway.pid)
            environ = Path(f"/proc/{gateway.pid}/environ").read_bytes()
            variables = dict(
                entry.split(b"=", 1) for entry in environ.split(b"\0") if entry
            )
            metrics_dir = Path(variables[MULTIPROC_DIR_VARIABLE.encode()].decode())
            dir_existed = metrics_dir.is_dir()
            gateway.send_signal(signal.SIGTERM)
            code = gateway.wait(timeout=STOP_SECONDS)
            workers_left = [pid for pid in workers if Path(f"/proc/{pid}").exists()]

        output = (tmp_path / "gateway.log").read_text()
        assert status == 200
        assert body["user"]["id"] == "1"
        assert code == 0
        assert dir_existed
        assert not metrics_dir.exists()
        assert workers_left == []
        assert "Traceback" not in output
        assert "Unclosed" not in output

    def test_json_log_lines_from_master_and_workers(self, tmp_path: Path) -> None:
        """With LOG_FORMAT=json every line, gunicorn's own included, is JSON."""
        with gateway_with_sandbox(tmp_path, LOG_FORMAT="json") as (port, gateway):
            status, _ = fetch(f"http://127.0.0.1:{port}/api/dashboard/1")
            gateway.send_signal(signal.SIGTERM)
            code = gateway.wait(timeout=STOP_SECONDS)

        lines = (tmp_path / "gateway.log").read_text().splitlines()
        messages = [json.loads(line)["message"] for line in lines]
        assert status == 200
        assert code == 0
        assert any("Starting gunicorn" in message for message in messages)
        assert any("Booting worker" in message for message in messages)

    def test_address_in_use_exits_one(self) -> None:
        """A taken port stops serve with 1 at once, without gunicorn's retries."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            result = subprocess.run(
                command("serve", "--port", str(port), "--workers", str(WORKERS)),
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )

        assert result.returncode == 1
        assert "in use" in result.stderr
        assert "Traceback" not in result.stderr

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--loop", "asyncio"], "--workers 2 or more"),
            (["--workers", "0"], "from 1 to 64"),
            (["--workers", "65"], "from 1 to 64"),
            (["--workers", "two"], "from 1 to 64"),
        ],
    )
    def test_invalid_arguments_exit_two(self, args: list[str], message: str) -> None:
        """Arguments that cannot work stop serve with 2 before anything starts."""
        result = subprocess.run(
            command("serve", "--port", str(free_port()), *args),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

        assert result.returncode == 2
        assert message in result.stderr
        assert "Traceback" not in result.stderr
