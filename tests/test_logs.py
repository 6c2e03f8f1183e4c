"""Logging set-up of the command line."""

from __future__ import annotations

import json
import logging

import pytest
from loguru import logger

from app.correlation import request_id_scope
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


class TestFormats:
    """Text and JSON lines, with the request id."""

    def test_json_lines_carry_fields(self, capsys: pytest.CaptureFixture[str]) -> None:
        """LOG_FORMAT json writes one object a line with the request's id."""
        configure_logging("INFO", "json")
        with request_id_scope("req-42"):
            logger.bind(service="user-service").info(
                "call done", method="GET", status=200, duration_ms=1.5
            )
        configure_logging("INFO", "text")

        line = capsys.readouterr().err.strip().splitlines()[-1]
        record = json.loads(line)
        assert record["message"] == "call done"
        assert record["level"] == "INFO"
        assert record["request_id"] == "req-42"
        assert record["service"] == "user-service"
        assert record["status"] == 200
        assert record["duration_ms"] == 1.5

    def test_text_lines_show_the_request_id(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The text format puts the request id in front of the message."""
        configure_logging("INFO", "text")
        with request_id_scope("req-7"):
            logger.info("hello")

        assert "[req-7]" in capsys.readouterr().err

    def test_unknown_format_is_rejected(self) -> None:
        """A log format other than text or json raises ValueError."""
        with pytest.raises(ValueError, match="xml"):
            configure_logging("INFO", "xml")
