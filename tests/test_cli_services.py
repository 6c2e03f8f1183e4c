"""`python -m app sandbox --services`: one sandbox service per process."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from tests.helpers import free_port
from tests.test_cli import child_env, command, fetch, running, wait_until_up


def refuses_connections(url: str) -> bool:
    """Tell whether nothing listens at a loopback URL."""
    try:
        with urllib.request.urlopen(url, timeout=5):
            return False
    except urllib.error.URLError as exc:
        return isinstance(exc.reason, ConnectionRefusedError)


class TestSandboxServices:
    """--services starts only the chosen sandbox service."""

    @pytest.mark.parametrize(
        ("services", "served", "skipped"),
        [("user", "user", "interview"), ("interview", "interview", "user")],
    )
    def test_only_chosen_service_listens(
        self, services: str, served: str, skipped: str
    ) -> None:
        """The chosen service returns 200 on /health and the other port is closed."""
        ports = {"user": free_port(), "interview": free_port()}
        args = command(
            "sandbox",
            "--services",
            services,
            "--user-port",
            str(ports["user"]),
            "--interview-port",
            str(ports["interview"]),
        )
        served_url = f"http://127.0.0.1:{ports[served]}/health"
        skipped_url = f"http://127.0.0.1:{ports[skipped]}/health"
        with running(args, child_env()) as process:
            wait_until_up(served_url, process)
            status, _ = fetch(served_url)
            skipped_closed = refuses_connections(skipped_url)

        assert status == 200
        assert skipped_closed

    def test_unknown_service_exits_two(self) -> None:
        """An unknown --services value is rejected by the argument parser."""
        with running(command("sandbox", "--services", "billing"), child_env()) as p:
            code = p.wait(timeout=30)
            assert p.stderr is not None
            stderr = p.stderr.read()

        assert code == 2
        assert "--services" in stderr
