"""Loguru set-up for the command-line entry points; the library adds no sinks."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from loguru import logger

from app.redaction import redact_record

__all__ = [
    "JSON_FIELDS",
    "LOG_FORMATS",
    "LOG_FORMAT_VARIABLE",
    "LOG_LEVEL_VARIABLE",
    "LoguruHandler",
    "configure_logging",
]

LOG_LEVEL_VARIABLE = "LOG_LEVEL"
LOG_FORMAT_VARIABLE = "LOG_FORMAT"
LOG_FORMATS = ("text", "json")
# Fields of a JSON line besides time, level and message, when the record has them.
JSON_FIELDS = (
    "service",
    "method",
    "path",
    "status",
    "duration_ms",
    "request_id",
    "trace_id",
    "span_id",
)
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


def configure_logging(level: str | None = None, log_format: str | None = None) -> None:
    """Send log lines of ``level`` and above to stderr, one line each.

    The level comes from the argument, then the LOG_LEVEL variable, then INFO.
    The format, ``text`` for people or ``json`` for one JSON object a line, comes
    from the argument, then LOG_FORMAT, then ``text``. Every record, the
    application's own included, passes through
    :func:`~app.redaction.redact_record` first.

    Raises:
        ValueError: the level is not one of LOG_LEVELS or the format not one of
            LOG_FORMATS.
    """
    chosen = (level or os.environ.get(LOG_LEVEL_VARIABLE) or "INFO").upper()
    if chosen not in LOG_LEVELS:
        message = f"log level must be one of {', '.join(LOG_LEVELS)}, got {chosen!r}"
        raise ValueError(message)
    shape = (log_format or os.environ.get(LOG_FORMAT_VARIABLE) or "text").lower()
    if shape not in LOG_FORMATS:
        message = f"log format must be one of {', '.join(LOG_FORMATS)}, got {shape!r}"
        raise ValueError(message)
    logger.remove()
    logger.configure(patcher=redact_record)
    if shape == "json":
        logger.add(_write_json_line, level=chosen, backtrace=False, diagnose=False)
    else:
        # diagnose=False keeps variable values, which may hold bodies, out of
        # tracebacks.
        logger.add(
            sys.stderr, level=chosen, format=_format, backtrace=False, diagnose=False
        )
    _route_aiohttp_server_log()
    _route_opentelemetry_log()


def _write_json_line(message: Any) -> None:
    record = message.record
    extra = record["extra"]
    line: dict[str, Any] = {
        "time": record["time"].isoformat(),
        "level": record["level"].name,
        "message": record["message"],
    }
    for field in JSON_FIELDS:
        if field in extra:
            line[field] = extra[field]
    if record["exception"] is not None:
        line["exception"] = type(record["exception"].value).__name__
    sys.stderr.write(json.dumps(line, default=str) + "\n")


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


class LoguruHandler(logging.Handler):
    """Pass a library's standard-library log records on to loguru.

    The lines then share the process's format, JSON included. ``level`` sets
    the loguru level of every record, or None keeps each record's own.
    """

    def __init__(self, level: str | None = None) -> None:
        super().__init__()
        self._level = level

    def emit(self, record: logging.LogRecord) -> None:
        level = self._level or record.levelname
        if level not in LOG_LEVELS:
            level = "INFO"
        logger.log(
            level,
            "{source}: {text}",
            source=record.name,
            text=record.getMessage()[:_MAX_FORWARDED_CHARACTERS],
        )


# Characters of a forwarded record's message kept, since some quote callers.
_MAX_FORWARDED_CHARACTERS = 500


def _route_opentelemetry_log() -> None:
    # OpenTelemetry's propagators warn about every malformed traceparent or
    # baggage header. Callers choose those headers and can send one per
    # request, and the header is ignored either way, so the warnings become
    # DEBUG lines, out of the log at the default level.
    otel_log = logging.getLogger("opentelemetry")
    otel_log.handlers = [LoguruHandler("DEBUG")]
    otel_log.propagate = False


def _format(record: Any) -> str:
    service = record["extra"].get("service")
    request_id = record["extra"].get("request_id")
    prefix = f"{service} " if service else ""
    if request_id:
        prefix = f"[{request_id}] {prefix}"
    return (
        "{time:YYYY-MM-DD HH:mm:ss.SSS} {level: <7} "
        + prefix.replace("{", "{{").replace("}", "}}")
        + "{message}\n{exception}"
    )
