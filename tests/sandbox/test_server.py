"""Tests for running both sandbox services together and for the exports."""

from __future__ import annotations

import asyncio
import re

import aiohttp
from loguru import logger

import app.sandbox
from app.sandbox import run_sandbox
from tests.sandbox.support import call

_ADDRESS = re.compile(r"Sandbox (\S+) listening on 127\.0\.0\.1:(\d+)")


class TestRunSandbox:
    async def test_serves_both_until_stop(self) -> None:
        """Both services return 200 on /health until the stop event is set."""
        messages: list[str] = []
        sink_id = logger.add(messages.append, format="{message}", level="INFO")
        stop = asyncio.Event()
        task = asyncio.create_task(
            run_sandbox(user_port=0, interview_port=0, stop=stop)
        )
        try:
            ports = await _wait_for_ports(messages)
            async with aiohttp.ClientSession() as session:
                for service, port in ports.items():
                    url = f"http://127.0.0.1:{port}/health"
                    status, body = await call(session, "GET", url)
                    assert status == 200
                    assert body["service"] == service
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=5)
            logger.remove(sink_id)
        assert task.done()

    async def test_cancel_stops_without_event(self) -> None:
        """Without a stop event, cancelling the task shuts the services down."""
        task = asyncio.create_task(run_sandbox(user_port=0, interview_port=0))
        await asyncio.sleep(0.2)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        assert task in done
        assert task.cancelled()


async def _wait_for_ports(messages: list[str]) -> dict[str, int]:
    ports: dict[str, int] = {}
    for _ in range(100):
        for message in messages:
            match = _ADDRESS.search(message)
            if match:
                ports[match.group(1)] = int(match.group(2))
        if len(ports) == 2:
            return ports
        await asyncio.sleep(0.05)
    message = f"sandbox did not log two listening addresses: {messages}"
    raise TimeoutError(message)


class TestExports:
    def test_all_is_sorted(self) -> None:
        """__all__ lists the public names in sorted order."""
        assert app.sandbox.__all__ == sorted(app.sandbox.__all__)

    def test_all_names_exist(self) -> None:
        """Every name in __all__ is importable from the package."""
        for name in app.sandbox.__all__:
            assert hasattr(app.sandbox, name)
