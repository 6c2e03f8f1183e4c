"""Gunicorn settings and hooks of ``python -m app serve --workers N``.

Gunicorn takes every lower-case name here that is one of its settings; its
command-line options and ``GUNICORN_CMD_ARGS`` override them. The hooks keep
prometheus_client's multiprocess directory consistent, so they need
PROMETHEUS_MULTIPROC_DIR set before gunicorn starts, as ``serve`` does.
"""

from __future__ import annotations

import os
import shutil
from typing import Protocol

from gunicorn.config import Config
from gunicorn.glogging import Logger
from prometheus_client import multiprocess

from app.logs import LOG_LEVEL_VARIABLE, LoguruHandler, configure_logging
from app.metrics import MULTIPROC_DIR_VARIABLE, clean_multiprocess_dir
from app.telemetry import install_tracer_provider

__all__ = [
    "GRACEFUL_TIMEOUT_SECONDS",
    "OWNED_METRICS_DIR_VARIABLE",
    "child_exit",
    "control_socket_disable",
    "graceful_timeout",
    "logger_class",
    "loglevel",
    "on_exit",
    "on_starting",
    "post_fork",
]

# Seconds a worker has after SIGTERM to finish its requests before gunicorn
# kills it.
GRACEFUL_TIMEOUT_SECONDS = 30
# Names the metrics directory that ``serve`` created for this run, so that
# on_exit removes it. A directory that the operator chose is kept.
OWNED_METRICS_DIR_VARIABLE = "SERVICE_PROXIES_OWNED_METRICS_DIR"

# Loguru's levels and the nearest of gunicorn's own.
_GUNICORN_LEVELS = {
    "TRACE": "debug",
    "DEBUG": "debug",
    "INFO": "info",
    "SUCCESS": "info",
    "WARNING": "warning",
    "ERROR": "error",
    "CRITICAL": "critical",
}

graceful_timeout = GRACEFUL_TIMEOUT_SECONDS
# Gunicorn 25.1+ opens a control socket at one path per user by default, which
# two gateways of one user would both claim.
control_socket_disable = True
loglevel = _GUNICORN_LEVELS.get(
    os.environ.get(LOG_LEVEL_VARIABLE, "INFO").upper(), "info"
)


class LoguruLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, with its lines written through loguru.

    gunicorn writes its own lines (start, workers booted and stopped, signals)
    in its own text format. Passed to loguru, they take the process's format,
    so that with LOG_FORMAT=json every line of the gateway is JSON.
    """

    def setup(self, cfg: Config) -> None:
        # The master's first line, "Starting gunicorn", comes before any hook.
        configure_logging()
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            log.handlers = [LoguruHandler()]
            log.propagate = False


logger_class = LoguruLogger


class _Worker(Protocol):
    pid: int


def on_starting(server: object) -> None:
    """Delete the metric files of an earlier run before the first worker starts."""
    clean_multiprocess_dir(_metrics_dir())


def post_fork(server: object, worker: object) -> None:
    """Set up the worker's log lines and, when the variables ask, its tracing.

    Log lines go to stderr at LOG_LEVEL, in LOG_FORMAT. The tracer provider is
    installed in each worker, after the fork, because the SDK exports spans
    from a thread of its own, which a fork does not copy.
    """
    configure_logging()
    install_tracer_provider()


def child_exit(server: object, worker: _Worker) -> None:
    """Drop the live gauges of a worker that exited. Its counters stay in the totals."""
    multiprocess.mark_process_dead(worker.pid, _metrics_dir())  # type: ignore[no-untyped-call]


def on_exit(server: object) -> None:
    """Remove the metrics directory when ``serve`` created it for this run."""
    directory = _metrics_dir()
    if os.environ.get(OWNED_METRICS_DIR_VARIABLE) == directory:
        shutil.rmtree(directory, ignore_errors=True)


def _metrics_dir() -> str:
    directory = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if not directory:
        message = (
            f"{MULTIPROC_DIR_VARIABLE} is not set; start the gateway with "
            "python -m app serve --workers N, which sets it"
        )
        raise RuntimeError(message)
    return directory
