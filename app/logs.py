"""Loguru set-up for the command-line entry points; the library adds no sinks."""

from __future__ import annotations

import os
import sys
from typing import Any

from loguru import logger

from app.redaction import redact_record

__all__ = ["LOG_LEVEL_VARIABLE", "configure_logging"]

LOG_LEVEL_VARIABLE = "LOG_LEVEL"


def configure_logging(level: str | None = None) -> None:
    """Send log lines of ``level`` and above to stderr, one line each.

    The level comes from the argument, then the LOG_LEVEL variable, then INFO.
    Every record, the application's own included, passes through
    :func:`~app.redaction.redact_record` first.
    """
    chosen = (level or os.environ.get(LOG_LEVEL_VARIABLE) or "INFO").upper()
    logger.remove()
    logger.configure(patcher=redact_record)
    # diagnose=False keeps variable values, which may hold bodies, out of tracebacks.
    logger.add(
        sys.stderr, level=chosen, format=_format, backtrace=False, diagnose=False
    )


def _format(record: Any) -> str:
    service = record["extra"].get("service")
    prefix = f"{service} " if service else ""
    return (
        "{time:YYYY-MM-DD HH:mm:ss.SSS} {level: <7} "
        + prefix.replace("{", "{{").replace("}", "}}")
        + "{message}\n{exception}"
    )
