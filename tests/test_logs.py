"""Logging set-up of the command line."""

from __future__ import annotations

import logging

import pytest
from loguru import logger

from app.logs import configure_logging


def test_protocol_errors_are_rate_limited() -> None:
    """A burst of rejected requests gives one log line, not one per request."""
    configure_logging("INFO")
    lines: list[str] = []
    sink_id = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        server_log = logging.getLogger("aiohttp.server")
        for _ in range(50):
            try:
                raise ValueError("Cookie: sid=secret-value")
            except ValueError:
                server_log.exception("Error handling request")
    finally:
        logger.remove(sink_id)

    assert len(lines) == 1
    assert "ValueError" in lines[0]
    assert "secret-value" not in lines[0]


def test_unknown_level_is_rejected() -> None:
    """A log level loguru does not know raises ValueError naming it."""
    with pytest.raises(ValueError, match="BOGUS"):
        configure_logging("bogus")
