"""Profile UserServiceProxy.get_user under load: ``python -m bench.profile``.

Sixteen callers call ``get_user`` back to back for a few seconds against the
fixed-body upstream, which runs in its own process, with the production
settings and the cache off. pyinstrument samples the whole thread, event loop
included, and the result goes to bench/profile.txt: the functions with the
most time of their own first, then the call tree.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Awaitable
from pathlib import Path

from pyinstrument import Profiler

from app.containers import resolve
from app.models import User
from bench.load import RunResult, closed_loop
from bench.processes import REPO_ROOT, ServerProcess, free_port, python_module
from bench.production import (
    configure_file_logging,
    production_container,
    write_config,
)

__all__ = ["main"]

# Lines of the flat list and of the package table kept in the output.
_FLAT_LINES = 40
_PACKAGE_LINES = 15
_SAMPLE_INTERVAL = 0.0005
_MAX_CALLS = 200_000


async def _profile(
    config: Path, seconds: float, concurrency: int
) -> tuple[Profiler, RunResult]:
    async with production_container(config) as container:
        users = await resolve(container.user_service)

        def call() -> Awaitable[User]:
            return users.get_user("1")

        await closed_loop(
            call, concurrency=concurrency, duration=1.0, max_calls=_MAX_CALLS
        )
        # Samples the whole thread, so that time in the event loop and in the
        # callers' tasks, not only in this task, shows in the profile.
        profiler = Profiler(interval=_SAMPLE_INTERVAL, async_mode="disabled")
        profiler.start()
        run = await closed_loop(
            call, concurrency=concurrency, duration=seconds, max_calls=_MAX_CALLS
        )
        profiler.stop()
    if run.errors:
        message = f"{run.errors} of {run.calls} calls failed, first {run.first_error}"
        raise RuntimeError(message)
    return profiler, run


def main(argv: list[str] | None = None) -> int:
    """Profile the proxy and write the text report."""
    args = _parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as directory:
        work = Path(directory)
        upstream = ServerProcess(
            "fixed_user", python_module("bench.upstreams", "fixed"), log_dir=work
        )
        with upstream:
            # interview-service is never called. It gets its own address
            # because settings reject two bulkheads on one host's connections.
            unused = f"http://127.0.0.1:{free_port()}"
            config = write_config(
                work / "config.yml", user_url=upstream.url, interview_url=unused
            )
            configure_file_logging(work / "profile.log")
            profiler, run = asyncio.run(
                _profile(config, args.seconds, args.concurrency)
            )

    by_package = _own_time_by_package(profiler)
    flat = profiler.output_text(flat=True, time="percent_of_total")
    flat_head = "\n".join(flat.splitlines()[:_FLAT_LINES])
    tree = profiler.output_text(time="percent_of_total")
    header = (
        f"UserServiceProxy.get_user, {args.concurrency} callers, "
        f"{run.seconds:.1f} s profiled: {run.calls} calls, {run.rps:.0f} calls/s "
        "under the profiler.\n"
        "Command: python -m bench.profile\n"
        "Samples are taken on the wall clock, so time that the process spent "
        "waiting for a core\n(the upstream shares the machine) counts in the "
        "function that was running, often socket.send.\n"
    )
    args.output.write_text(
        f"{header}\n== own time by package ==\n{by_package}\n\n"
        f"== functions by own time (top {_FLAT_LINES} lines) ==\n"
        f"{flat_head}\n\n== call tree ==\n{tree}"
    )
    print(f"wrote {args.output}")
    print(by_package)
    print(flat_head)
    return 0


def _own_time_by_package(profiler: Profiler) -> str:
    """Return the share of sampled time spent in each package's own code."""
    session = profiler.last_session
    if session is None:
        return "no samples"
    totals: dict[str, float] = {}
    pending = [session.root_frame()]
    while pending:
        frame = pending.pop()
        if frame is None:
            continue
        for child in frame.children:
            if child.function == "[self]":
                package = _package_of(frame.file_path or "", frame.function)
                totals[package] = totals.get(package, 0.0) + child.time
            else:
                pending.append(child)
    whole = sum(totals.values()) or 1.0
    ranked = sorted(totals.items(), key=lambda item: item[1], reverse=True)
    return "\n".join(
        f"{seconds / whole:6.1%}  {package}"
        for package, seconds in ranked[:_PACKAGE_LINES]
    )


def _package_of(path: str, function: str) -> str:
    """Name the package of a frame: app (this project), a library, or a built-in."""
    if path.startswith(str(REPO_ROOT / "app")):
        return "app (this project)"
    if path.startswith(str(REPO_ROOT / "bench")):
        return "bench (the load loop)"
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/lib/python3" in path:
        module = path.split("/lib/python3", 1)[1].split("/", 2)[1]
        return f"stdlib {module.removesuffix('.py')}"
    return f"built-in {function}"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="seconds profiled (default: 3)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=16, help="callers at once (default: 16)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO_ROOT / "bench" / "profile.txt",
        help="text report to write (default: bench/profile.txt)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main())
