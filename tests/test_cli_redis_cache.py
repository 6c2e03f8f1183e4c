"""Two `python -m app serve` processes sharing one Redis in front of one upstream."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from tests.counting_sandbox import COUNTS_PATH
from tests.helpers import free_port
from tests.redis_server import RedisServer
from tests.test_cli import (
    command,
    fetch,
    running,
    service_env,
    wait_until_up,
)

USER_ID = "1"


@contextmanager
def counting_sandbox() -> Iterator[tuple[int, int]]:
    """Run the counting sandbox in its own process and yield its two ports."""
    user_port, interview_port = free_port(), free_port()
    args = [
        sys.executable,
        "-m",
        "tests.counting_sandbox",
        "--user-port",
        str(user_port),
        "--interview-port",
        str(interview_port),
    ]
    with running(args, service_env(user_port, interview_port)) as process:
        wait_until_up(f"http://127.0.0.1:{user_port}/health", process)
        wait_until_up(f"http://127.0.0.1:{interview_port}/health", process)
        yield user_port, interview_port


@contextmanager
def gateways(
    count: int, user_port: int, interview_port: int, redis_url: str
) -> Iterator[list[str]]:
    """Run ``count`` gateways with the same Redis settings; yield their URLs."""
    env = service_env(user_port, interview_port)
    env.update(CACHE_BACKEND="redis", CACHE_REDIS_URL=redis_url)
    with ExitStack() as stack:
        started: list[tuple[str, subprocess.Popen[str]]] = []
        for _ in range(count):
            port = free_port()
            args = command("serve", "--port", str(port))
            process = stack.enter_context(running(args, env))
            started.append((f"http://127.0.0.1:{port}", process))
        for url, process in started:
            wait_until_up(f"{url}/health/live", process)
        yield [url for url, _ in started]


def requests_served(port: int) -> dict[str, Any]:
    """Return the counting sandbox's request counts on ``port``."""
    status, counts = fetch(f"http://127.0.0.1:{port}{COUNTS_PATH}")
    assert status == 200
    return dict(counts)


def cache_hits(gateway_url: str) -> float:
    """Read the user-service cache hits from a gateway's /metrics."""
    with urllib.request.urlopen(f"{gateway_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    series = 'service_cache_requests_total{result="hit",service="user-service"}'
    for line in text.splitlines():
        if line.startswith(series):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class TestGatewaysShareCache:
    """Gateways with the same CACHE_REDIS_URL share cached reads."""

    def test_second_gateway_is_served_from_cache(
        self, redis_server: RedisServer
    ) -> None:
        """A dashboard through B after one through A loads the user only once."""
        with (
            counting_sandbox() as (user_port, interview_port),
            gateways(2, user_port, interview_port, redis_server.url) as urls,
        ):
            first_status, first = fetch(f"{urls[0]}/api/dashboard/{USER_ID}")
            second_status, second = fetch(f"{urls[1]}/api/dashboard/{USER_ID}")
            counts = requests_served(user_port)
            hits = cache_hits(urls[1])

        assert first_status == 200
        assert second_status == 200
        assert second["user"] == first["user"]
        assert counts["GET /users/{id}"] == 1
        assert counts["GET /users/{id}/stats"] == 1
        # The user and the stats of the second dashboard.
        assert hits == 2

    def test_stopped_redis_sends_reads_upstream(
        self, redis_server: RedisServer
    ) -> None:
        """With Redis stopped mid-run, dashboards still succeed, each one upstream."""
        with (
            counting_sandbox() as (user_port, interview_port),
            gateways(2, user_port, interview_port, redis_server.url) as urls,
        ):
            fetch(f"{urls[0]}/api/dashboard/{USER_ID}")
            fetch(f"{urls[1]}/api/dashboard/{USER_ID}")
            redis_server.stop()
            statuses = [fetch(f"{url}/api/dashboard/{USER_ID}")[0] for url in urls]
            counts = requests_served(user_port)

        assert statuses == [200, 200]
        assert counts["GET /users/{id}"] == 3
