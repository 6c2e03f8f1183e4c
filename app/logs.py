"""Loguru set-up for the command-line entry points; the library adds no sinks."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from loguru import logger

from app.redaction import redact_record

__all__ = ["LOG_LEVEL_VARIABLE", "configure_logging"]

LOG_LEVEL_VARIABLE = "LOG_LEVEL"
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


def configure_logging(level: str | None = None) -> None:
    """Send log lines of ``level`` and above to stderr, one line each.

    The level comes from the argument, then the LOG_LEVEL variable, then INFO.
    Every record, the application's own included, passes through
    :func:`~app.redaction.redact_record` first.

    Raises:
        ValueError: the level is not one of LOG_LEVELS.
    """
    chosen = (level or os.environ.get(LOG_LEVEL_VARIABLE) or "INFO").upper()
    if chosen not in LOG_LEVELS:
        message = f"log level must be one of {', '.join(LOG_LEVELS)}, got {chosen!r}"
        raise ValueError(message)
    logger.remove()
    logger.configure(patcher=redact_record)
    # diagnose=False keeps variable values, which may hold bodies, out of tracebacks.
    logger.add(
        sys.stderr, level=chosen, format=_format, backtrace=False, diagnose=False
    )
    _route_aiohttp_server_log()


class _ProtocolErrorHandler(logging.Handler):
    """Log aiohttp's server errors as one line, without the request's bytes.

    aiohttp logs a malformed request with a traceback whose text can hold the
    request's header values and query string. Handler errors never reach this
    logger, since the gateway's middleware turns them into JSON 500s.
    """

    # Seconds between two lines, so that a flood of bad requests cannot flood
    # the log; the lines in between are counted in the next one.
    interval = 1.0

    def __init__(self) -> None:
        super().__init__()
        self._last = -self.interval
        self._suppressed = 0

    def emit(self, record: logging.LogRecord) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            self._suppressed += 1
            return
        error = record.exc_info[1] if record.exc_info else None
        cause = type(error).__name__ if error is not None else record.levelname
        logger.warning(
            "HTTP server rejected a request: {cause} ({suppressed} more not logged)",
            cause=cause,
            suppressed=self._suppressed,
        )
        self._last = now
        self._suppressed = 0


def _route_aiohttp_server_log() -> None:
    server_log = logging.getLogger("aiohttp.server")
    server_log.handlers = [_ProtocolErrorHandler()]
    server_log.propagate = False


def _format(record: Any) -> str:
    service = record["extra"].get("service")
    prefix = f"{service} " if service else ""
    return (
        "{time:YYYY-MM-DD HH:mm:ss.SSS} {level: <7} "
        + prefix.replace("{", "{{").replace("}", "}}")
        + "{message}\n{exception}"
    )
