"""Two user-service processes behind one gateway, one of them killed under load."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import free_port
from tests.test_cli import child_env, command, fetch, running, wait_until_up

SERVICE = "user-service"
WORKERS = 4
# Seconds of load before the kill, and after the ejection.
WARM_UP_SECONDS = 1.5
AFTER_EJECTION_SECONDS = 3.0
EJECTION_WAIT_SECONDS = 10.0
# Upper bound on the whole load run, whatever happens.
MAX_LOAD_SECONDS = 40.0


@dataclass
class DashboardLoad:
    """Threads that request dashboards from the gateway until stopped."""

    base_url: str
    # Start time, status and the parts that failed, of every request.
    results: list[tuple[float, int, list[str]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        """Start the worker threads."""
        for worker in range(WORKERS):
            thread = threading.Thread(target=self._run, args=(worker,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop the workers and wait for their last requests."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def started_after(self, moment: float) -> list[tuple[int, list[str]]]:
        """Return status and failed parts of the requests started after ``moment``."""
        with self._lock:
            return [
                (status, parts)
                for started, status, parts in self.results
                if started > moment
            ]

    def _run(self, worker: int) -> None:
        ends_at = time.monotonic() + MAX_LOAD_SECONDS
        request = 0
        while not self._stop.is_set() and time.monotonic() < ends_at:
            user_id = (worker * 1000 + request) % 60 + 1
            request += 1
            started = time.monotonic()
            status, parts = get_dashboard(f"{self.base_url}/api/dashboard/{user_id}")
            with self._lock:
                self.results.append((started, status, parts))


def get_dashboard(url: str) -> tuple[int, list[str]]:
    """GET one dashboard and return its status (0 without one) and failed parts."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
            return int(response.status), [error["part"] for error in body["errors"]]
    except urllib.error.HTTPError as exc:
        return exc.code, []
    except (OSError, ValueError):
        return 0, []


def endpoint_samples(gateway: str, name: str) -> dict[str, float]:
    """Read one user-service endpoint metric from /metrics, by endpoint URL."""
    with urllib.request.urlopen(f"{gateway}/metrics", timeout=5) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for metric_sample in family.samples:
            labels = metric_sample.labels
            if metric_sample.name == name and labels.get("service") == SERVICE:
                values[labels["endpoint"]] = metric_sample.value
    return values


def wait_for_ejection(gateway: str, endpoint: str) -> float:
    """Poll /metrics until ``endpoint`` is ejected and return the time it was seen."""
    deadline = time.monotonic() + EJECTION_WAIT_SECONDS
    while time.monotonic() < deadline:
        ejections = endpoint_samples(gateway, "service_endpoint_ejections_total")
        if ejections.get(endpoint, 0.0) >= 1:
            return time.monotonic()
        time.sleep(0.05)
    message = f"{endpoint} was not ejected within {EJECTION_WAIT_SECONDS} s"
    raise AssertionError(message)


@contextmanager
def sandbox(services: str, port: int) -> Iterator[int]:
    """Run one sandbox service in its own process and yield its PID."""
    option = "--user-port" if services == "user" else "--interview-port"
    args = command("sandbox", "--services", services, option, str(port))
    with running(args, child_env()) as process:
        wait_until_up(f"http://127.0.0.1:{port}/health", process)
        yield process.pid


def test_killed_instance_ejected_while_dashboards_succeed() -> None:
    """Killing one of two user-service processes fails no dashboard after ejection.

    The dashboards keep running while the second instance is killed by its PID.
    The gateway ejects it after its default 5 consecutive failures, retries
    move to the live instance meanwhile, and every later dashboard returns 200.
    """
    user_ports = (free_port(), free_port())
    interview_port, gateway_port = free_port(), free_port()
    live, stopped = (f"http://127.0.0.1:{port}" for port in user_ports)
    gateway = f"http://127.0.0.1:{gateway_port}"
    env = child_env(
        USER_SERVICE_URL=f"{live},{stopped}",
        INTERVIEW_SERVICE_URL=f"http://127.0.0.1:{interview_port}",
        # Every dashboard must reach user-service, not its read cache.
        USER_SERVICE_CACHE_ENABLED="false",
        USER_SERVICE_BACKOFF_INITIAL="0.05",
        USER_SERVICE_BACKOFF_MAX="0.2",
        GATEWAY_PORT=str(gateway_port),
    )

    with ExitStack() as stack:
        stack.enter_context(sandbox("user", user_ports[0]))
        stopped_pid = stack.enter_context(sandbox("user", user_ports[1]))
        stack.enter_context(sandbox("interview", interview_port))
        server = stack.enter_context(running(command("serve"), env))
        wait_until_up(f"{gateway}/health/live", server)

        load = DashboardLoad(gateway)
        load.start()
        try:
            time.sleep(WARM_UP_SECONDS)
            before_kill = endpoint_samples(gateway, "service_endpoint_attempts_total")
            killed_at = time.monotonic()
            os.kill(stopped_pid, signal.SIGKILL)
            ejected_at = wait_for_ejection(gateway, stopped)
            at_ejection = endpoint_samples(gateway, "service_endpoint_attempts_total")
            time.sleep(AFTER_EJECTION_SECONDS)
        finally:
            load.stop()

        at_end = endpoint_samples(gateway, "service_endpoint_attempts_total")
        ejections = endpoint_samples(gateway, "service_endpoint_ejections_total")
        states = endpoint_samples(gateway, "service_endpoint_state")
        ready_status, ready = fetch(f"{gateway}/health/ready")

    after_ejection = load.started_after(ejected_at)
    after_kill = load.started_after(killed_at)
    # Both instances served before the kill.
    assert before_kill[live] > 10
    assert before_kill[stopped] > 10
    # The killed instance was ejected once, the live one never.
    assert ejections[stopped] == 1
    assert ejections[live] == 0
    assert states[stopped] == 1
    assert states[live] == 0
    # Traffic moved: no attempt reached the killed instance after its ejection.
    assert at_end[stopped] == at_ejection[stopped]
    assert at_end[live] - at_ejection[live] > 50
    # No dashboard failed or lost a part after the ejection.
    assert len(after_ejection) > 50
    assert [result for result in after_ejection if result != (200, [])] == []
    # Between the kill and the ejection, retries on the live instance saved every
    # dashboard. An optional part may be lost then, because its deadline of 2 s
    # leaves no room for a retry with the 2 s timeout. At most the 5 failures
    # that eject, plus the attempts of the two user-service calls of each
    # worker's dashboard already in flight, reach the killed instance.
    assert [status for status, _ in after_kill if status != 200] == []
    lost_parts = [parts for _, parts in after_kill if parts]
    assert len(lost_parts) <= 5 + 2 * WORKERS
    # The service stays ready, with the killed endpoint listed as ejected.
    user_health = ready["services"][SERVICE]
    by_url = {endpoint["url"]: endpoint for endpoint in user_health["endpoints"]}
    assert ready_status == 200
    assert user_health["circuit"] == "closed"
    assert by_url[stopped]["state"] == "ejected"
    assert not by_url[stopped]["reachable"]
    assert by_url[live]["healthy"]
