"""Command-line interface: serve the gateway, run the sandbox, print a dashboard."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import sys
from collections.abc import Sequence

from aiohttp import web
from dependency_injector import providers
from loguru import logger

from app.containers import Container, resolve, running_container
from app.gateway.app import create_app, tune_collector_on_startup
from app.gateway.workers import LOOPS, MAX_WORKERS, exec_gunicorn
from app.logs import configure_logging
from app.metrics import MULTIPROC_DIR_VARIABLE, clean_multiprocess_dir
from app.proxies.errors import ServiceProxyError
from app.redaction import mask_emails
from app.sandbox import run_sandbox, seeded_user_ids
from app.sandbox.server import SANDBOX_SERVICES
from app.settings import Settings, load_settings
from app.telemetry import install_tracer_provider

__all__ = ["main"]

DEFAULT_USER_PORT = 3003
DEFAULT_INTERVIEW_PORT = 3004
LOOPBACK = "127.0.0.1"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return the process exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        configure_logging(args.log_level)
        return int(args.handler(args))
    except KeyboardInterrupt:
        # Ctrl-C outside a command's own signal handling, such as dashboard.
        return 130
    except ValueError as exc:
        # Invalid settings or arguments: one clear line, no traceback.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # Most often a port that another process already listens on.
        print(f"error: {exc.strerror or exc}", file=sys.stderr)
        return 1


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description="Service proxies: the dashboard gateway and its sandbox.",
    )
    parser.add_argument(
        "--log-level",
        help="minimum log level: TRACE, DEBUG, INFO, SUCCESS, WARNING, ERROR or "
        "CRITICAL "
        "(default: the LOG_LEVEL variable, else INFO)",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the dashboard gateway")
    serve.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="port to listen on (default: 3000)")
    serve.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help=f"number of gateway processes, 1 to {MAX_WORKERS}. 2 or more run "
        "gunicorn with aiohttp's worker class, and /metrics adds up all of them "
        "(default: 1)",
    )
    serve.add_argument(
        "--loop",
        choices=LOOPS,
        help="event loop of the gunicorn workers (default: uvloop when it is "
        "installed, else asyncio), only with --workers 2 or more",
    )
    serve.set_defaults(handler=_serve)

    sandbox = commands.add_parser(
        "sandbox", help="run the sandbox user-service and interview-service"
    )
    _add_sandbox_arguments(sandbox)
    sandbox.add_argument(
        "--services",
        choices=SANDBOX_SERVICES,
        default="all",
        help="which services this process serves, so that each can run in its own "
        "process; the port of a service left out is unused (default: all)",
    )
    sandbox.set_defaults(handler=_sandbox)

    dashboard = commands.add_parser(
        "dashboard", help="print one user's dashboard as JSON"
    )
    dashboard.add_argument("user_id", metavar="USER_ID", help="id of the user")
    dashboard.set_defaults(handler=_dashboard)

    demo = commands.add_parser(
        "demo", help="run the sandbox and the gateway together in one process"
    )
    _add_sandbox_arguments(demo)
    demo.add_argument(
        "--port", type=_port, help="port of the gateway (default: from settings, 3000)"
    )
    demo.set_defaults(handler=_demo)
    return parser


def _add_sandbox_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--user-port",
        type=_port,
        default=DEFAULT_USER_PORT,
        help=f"port of user-service (default: {DEFAULT_USER_PORT})",
    )
    parser.add_argument(
        "--interview-port",
        type=_port,
        default=DEFAULT_INTERVIEW_PORT,
        help=f"port of interview-service (default: {DEFAULT_INTERVIEW_PORT})",
    )
    parser.add_argument(
        "--latency-ms",
        type=_latency,
        default=0.0,
        help="milliseconds by which every sandbox response is delayed (default: 0)",
    )


def _port(text: str) -> int:
    """Parse a TCP port for argparse: a whole number from 0 to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        message = f"must be a port from 0 to 65535, got {text!r}"
        raise argparse.ArgumentTypeError(message)
    return port


def _workers(text: str) -> int:
    """Parse --workers for argparse: a whole number from 1 to MAX_WORKERS."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_WORKERS:
        message = f"must be a whole number from 1 to {MAX_WORKERS}, got {text!r}"
        raise argparse.ArgumentTypeError(message)
    return count


def _latency(text: str) -> float:
    """Parse --latency-ms for argparse: a finite number of milliseconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and 0 <= value <= 600_000):
        message = f"must be 0 to 600000 milliseconds, got {text!r}"
        raise argparse.ArgumentTypeError(message)
    return value


def _serve(args: argparse.Namespace) -> int:
    if args.workers == 1 and args.loop is not None:
        message = "--loop applies to gunicorn workers; add --workers 2 or more"
        raise ValueError(message)
    settings = load_settings()
    host = args.host or settings.gateway.host
    port = settings.gateway.port if args.port is None else args.port
    # Before the app and its proxies are built, which read the provider once.
    # With workers it only checks the variables: each worker installs its own.
    install_tracer_provider()
    if args.workers > 1:
        exec_gunicorn(
            host=host,
            port=port,
            workers=args.workers,
            loop=args.loop,
            log_level=args.log_level,
        )
    # A directory set by the operator puts this process in multiprocess mode
    # too; files of an earlier run would add to its totals.
    multiprocess_dir = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if multiprocess_dir:
        clean_multiprocess_dir(multiprocess_dir)
    container = Container()
    container.settings.override(providers.Object(settings))
    logger.info("gateway starting on http://{host}:{port}", host=host, port=port)
    # run_app handles SIGINT and SIGTERM and runs the app's cleanup on both.
    app = create_app(container)
    tune_collector_on_startup(app)
    web.run_app(app, host=host, port=port, print=None)
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    async def run() -> None:
        stop = _stop_on_signals()
        await run_sandbox(
            host=LOOPBACK,
            user_port=args.user_port,
            interview_port=args.interview_port,
            latency_ms=args.latency_ms,
            stop=stop,
            services=args.services,
        )

    asyncio.run(run())
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    settings = load_settings()
    return asyncio.run(_print_dashboard_until_signal(settings, args.user_id))


async def _print_dashboard_until_signal(settings: Settings, user_id: str) -> int:
    """Print a dashboard; SIGINT or SIGTERM cancels it cleanly, exit code 130."""
    stop = _stop_on_signals()
    stopped = asyncio.create_task(stop.wait())
    work = asyncio.create_task(_print_dashboard(settings, user_id))
    await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if work.done():
        stopped.cancel()
        return work.result()
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await work
    return 130


async def _print_dashboard(settings: Settings, user_id: str) -> int:
    container = Container()
    container.settings.override(providers.Object(settings))
    async with running_container(container):
        aggregator = await resolve(container.dashboard_aggregator)
        try:
            dashboard = await aggregator.get_user_dashboard(user_id)
        except ServiceProxyError as exc:
            print(f"error: {mask_emails(str(exc))}", file=sys.stderr)
            return 1
    print(dashboard.model_dump_json(indent=2))
    return 0


def _demo(args: argparse.Namespace) -> int:
    base = load_settings()
    settings = load_settings(
        user_service={"url": f"http://{LOOPBACK}:{args.user_port}"},
        interview_service={"url": f"http://{LOOPBACK}:{args.interview_port}"},
    )
    port = base.gateway.port if args.port is None else args.port
    asyncio.run(_run_demo(settings, args, port))
    return 0


async def _run_demo(settings: Settings, args: argparse.Namespace, port: int) -> None:
    stop = _stop_on_signals()
    listening = asyncio.Event()
    sandbox = asyncio.create_task(
        run_sandbox(
            host=LOOPBACK,
            user_port=args.user_port,
            interview_port=args.interview_port,
            latency_ms=args.latency_ms,
            stop=stop,
            started=listening,
        )
    )
    # A sandbox port in use must stop the demo now, rather than let the
    # gateway serve another process's responses.
    ready = asyncio.create_task(listening.wait())
    await asyncio.wait({sandbox, ready}, return_when=asyncio.FIRST_COMPLETED)
    if sandbox.done():
        ready.cancel()
        sandbox.result()
    container = Container()
    container.settings.override(providers.Object(settings))
    runner = web.AppRunner(create_app(container))
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.gateway.host, port).start()
        user_id = seeded_user_ids()[0]
        url = f"http://{settings.gateway.host}:{port}/api/dashboard/{user_id}"
        logger.info("gateway listening; try: curl {url}", url=url)
        print(f"Dashboard of a seeded user: {url}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        await stop.wait()
    finally:
        stop.set()
        await runner.cleanup()
        with contextlib.suppress(asyncio.CancelledError):
            await sandbox


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop
