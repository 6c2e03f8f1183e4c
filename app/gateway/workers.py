"""Serve the gateway from several gunicorn worker processes."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import sys
import tempfile
from typing import NoReturn

from aiohttp import web
from dependency_injector import providers
from loguru import logger

from app.containers import Container
from app.gateway.app import create_app, tune_collector_on_startup
from app.gateway.gunicorn_conf import (
    GRACEFUL_TIMEOUT_SECONDS,
    OWNED_METRICS_DIR_VARIABLE,
)
from app.logs import LOG_LEVEL_VARIABLE
from app.metrics import MULTIPROC_DIR_VARIABLE, clean_multiprocess_dir
from app.settings import load_settings

__all__ = [
    "LOOPS",
    "MAX_WORKERS",
    "create_worker_runner",
    "exec_gunicorn",
    "worker_class",
]

LOOPS = ("asyncio", "uvloop")
# Catches a mistyped count: each worker opens its own connection pool, of up to
# http_client.connection_limit connections.
MAX_WORKERS = 64
# aiohttp's web.run_app default, which the single-process gateway uses.
KEEPALIVE_SECONDS = 75.0

_CONFIG = "python:app.gateway.gunicorn_conf"
_APP = "app.gateway.workers:create_worker_runner"


def worker_class(loop: str | None) -> str:
    """Return aiohttp's gunicorn worker class for an event loop choice.

    ``None`` picks uvloop when it is installed, else asyncio.

    Raises:
        ValueError: ``loop`` is ``uvloop`` and uvloop is not installed.
    """
    has_uvloop = importlib.util.find_spec("uvloop") is not None
    if loop == "uvloop" and not has_uvloop:
        message = "--loop uvloop needs the uvloop package: pip install uvloop"
        raise ValueError(message)
    if loop == "uvloop" or (loop is None and has_uvloop):
        return "aiohttp.GunicornUVLoopWebWorker"
    return "aiohttp.GunicornWebWorker"


def exec_gunicorn(
    *,
    host: str,
    port: int,
    workers: int,
    loop: str | None,
    log_level: str | None = None,
) -> NoReturn:
    """Replace this process with a gunicorn master of ``workers`` gateways.

    PROMETHEUS_MULTIPROC_DIR is set before gunicorn's interpreter starts, so
    that every process imports prometheus_client in multiprocess mode. When the
    variable is unset, a new private directory is made, and gunicorn removes it
    when it exits. Either way gunicorn empties the directory before the first
    worker starts.

    Raises:
        ValueError: ``loop`` cannot be used, or PROMETHEUS_MULTIPROC_DIR names
            something other than a directory.
        OSError: the address is in use, or the directory could not be made or
            gunicorn not started.
    """
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        _CONFIG,
        "--bind",
        _bind_address(host, port),
        "--workers",
        str(workers),
        "--worker-class",
        worker_class(loop),
        _APP,
    ]
    _check_address_free(host, port)
    env = dict(os.environ)
    env.pop(OWNED_METRICS_DIR_VARIABLE, None)
    if log_level is not None:
        env[LOG_LEVEL_VARIABLE] = log_level
    owned = None
    if env.get(MULTIPROC_DIR_VARIABLE):
        # Checked here, where the error is one line, rather than in gunicorn.
        clean_multiprocess_dir(env[MULTIPROC_DIR_VARIABLE])
    else:
        # NOTE: gunicorn runs on_exit, which removes this directory, on every
        # stop after start-up, but not when its own options are invalid.
        owned = tempfile.mkdtemp(prefix="service-proxies-metrics-")
        env[MULTIPROC_DIR_VARIABLE] = owned
        env[OWNED_METRICS_DIR_VARIABLE] = owned
    logger.info(
        "gateway starting on http://{address} with {workers} gunicorn workers, "
        "metrics in {directory}",
        address=_bind_address(host, port),
        workers=workers,
        directory=env[MULTIPROC_DIR_VARIABLE],
    )
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, argv, env)
    except OSError:
        if owned is not None:
            shutil.rmtree(owned, ignore_errors=True)
        raise


async def create_worker_runner() -> web.AppRunner:
    """Build the gateway of one worker, for aiohttp's gunicorn worker to await.

    Returning a runner rather than the app keeps the single-process gateway's
    keep-alive and its ``aiohttp.server`` logger, which logs a request that
    aiohttp's parser rejects as one line without the request's bytes. Requests
    in flight at SIGTERM get most of gunicorn's graceful timeout to finish.
    """
    container = Container()
    container.settings.override(providers.Object(load_settings()))
    app = create_app(container)
    tune_collector_on_startup(app)
    return web.AppRunner(
        app,
        keepalive_timeout=KEEPALIVE_SECONDS,
        shutdown_timeout=GRACEFUL_TIMEOUT_SECONDS * 0.95,
    )


def _check_address_free(host: str, port: int) -> None:
    """Bind the address once, so that one in use fails at once with OSError.

    Gunicorn 27 would retry for about 5 s before giving up. SO_REUSEADDR, which gunicorn
    sets too, keeps connections closed a moment ago from failing the check.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def _bind_address(host: str, port: int) -> str:
    # An IPv6 address takes brackets, so that its colons are not read as the port.
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"
