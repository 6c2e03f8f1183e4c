"""Run the fault matrix and write docs/faults.md: ``python -m tests.faults.report``."""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from loguru import logger

from tests.faults.matrix import (
    ROWS,
    SETTINGS,
    UNRESOLVABLE_URL,
    Observation,
    Row,
    compare,
    find_leaks,
    run_row,
)

__all__ = [
    "DOC_PATH",
    "SOAK_END",
    "SOAK_START",
    "RowResult",
    "main",
    "render",
    "run_matrix",
    "soak_section",
]

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "faults.md"
# soak/report.py writes the Load section, heading included, between these markers.
SOAK_START = "<!-- soak:start -->"
SOAK_END = "<!-- soak:end -->"
SOAK_PLACEHOLDER = "No load-test results yet: `make soak` writes its Load section here."


@dataclass(frozen=True)
class RowResult:
    """One row with its observation and the differences found in it."""

    row: Row
    observed: Observation
    problems: list[str]
    leaks: list[str]

    @property
    def matches(self) -> bool:
        """True when the row behaved as expected and leaked nothing."""
        return not (self.problems or self.leaks)


async def run_matrix() -> list[RowResult]:
    """Run every row in order and check each against its expectation."""
    results = []
    for row in ROWS:
        observed = await run_row(row)
        problems = compare(row.expected, observed)
        results.append(RowResult(row, observed, problems, find_leaks(observed)))

    return results


def soak_section(existing: str | None) -> str:
    """Return the load-test markers with the text between them kept.

    Raises:
        ValueError: the file contains one marker without the other, or both in
            the wrong order.
    """
    if existing is None or (SOAK_START not in existing and SOAK_END not in existing):
        return f"{SOAK_START}\n{SOAK_PLACEHOLDER}\n{SOAK_END}"

    start = existing.find(SOAK_START)
    end = existing.find(SOAK_END, max(start, 0))
    if start < 0 or end < 0:
        message = (
            f"{DOC_PATH.name} must contain {SOAK_START} followed by {SOAK_END}, "
            "or neither; restore the markers before regenerating it"
        )
        raise ValueError(message)

    return existing[start : end + len(SOAK_END)]


def render(
    results: Sequence[RowResult],
    *,
    soak: str,
    runtime: float,
    machine: str,
    cpus: int,
    day: date,
) -> str:
    """Build the whole Markdown page."""
    settings = ", ".join(f"`{name}={value}`" for name, value in SETTINGS.items())
    matched = sum(result.matches for result in results)
    known = sum(result.row.expected.bug is not None for result in results)
    lines = [
        "# Fault matrix",
        "",
        "Each row sends one call of `UserServiceProxy` to an upstream that fails in "
        'one way: `get_user("1")`, a GET, and `reserve_interview_quota("1")`, a '
        "POST that carries an `Idempotency-Key` and so may be retried. The upstream "
        "is `app.testing.ScriptedUpstream` on loopback. Every row gets a fresh "
        "upstream, `aiohttp.ClientSession`, proxy (breaker, budget, bulkhead) and "
        "metrics registry.",
        "",
        f"Settings: {settings}; the rest are the defaults of `ServiceSettings`.",
        "",
        f"Run on {day.isoformat()}, machine `{machine}` (`uname -m`), {cpus} CPUs "
        f"(`nproc`): {len(results)} rows in {runtime:.1f} s, {matched} as expected, "
        f"{known} with a known bug.",
        "",
        "## How to regenerate",
        "",
        "`make faults` runs `.venv/bin/python -m tests.faults.report`, which runs "
        "the matrix and rewrites this page, keeping the load-test section. The "
        "same rows run as tests in `make test` (`tests/faults/test_matrix.py`); a "
        "known bug there is a strict xfail.",
        "",
        "## Columns",
        "",
        "- Hits: requests the upstream received. Attempts: the proxy's attempts.",
        "- Metrics: the non-zero counters of the row's registry, without the "
        "`service_` prefix.",
        "- Leaks: change in pending asyncio tasks and in open file descriptors "
        "from before the row to after its session and upstream closed, then the "
        "connections the connector still held right after the call. Rows with a "
        "memory bound also show the peak growth of the resident set.",
        f"- The unresolvable host is `{UNRESOLVABLE_URL}`. The rows resolve names "
        "with `tests.faults.probes.LoopbackResolver`, because the system resolver "
        "may send the query to a nameserver off the machine.",
        "",
        "## Results",
        "",
        "| Fault | Call | Expected | Observed | Attempts / hits "
        "| Elapsed / deadline (ms) | Metrics | Leaks (tasks / fds / conns) | Match |",
        "|---|---|---|---|---|---|---|---|---|",
        *(_table_row(result) for result in results),
        "",
        *_differences(results),
        soak,
        "",
    ]
    return "\n".join(lines)


def _table_row(result: RowResult) -> str:
    row, observed = result.row, result.observed
    cells = [
        row.fault.title,
        f"`{row.call.name}`",
        _expected_cell(row),
        _observed_cell(observed),
        f"{observed.attempts} / {observed.hits}",
        f"{observed.elapsed * 1000:.0f} / {observed.deadline * 1000:.0f}",
        "<br>".join(
            f"{name} {value:g}" for name, value in sorted(observed.metrics.items())
        ),
        _leaks_cell(row, observed),
        "✓" if result.matches else "✗",
    ]
    return "| " + " | ".join(cells) + " |"


def _expected_cell(row: Row) -> str:
    expected = row.expected
    low, high = expected.hits
    count = str(low) if low == high else f"{low}-{high}"
    hits = f"{count} hit" if high == 1 else f"{count} hits"
    retried = "retried" if expected.retried else "not retried"
    parts = [f"`{expected.outcome}`", f"{retried}, {hits}"]
    if expected.status_code is not None:
        parts.append(f"status {expected.status_code}")

    return "<br>".join(parts)


def _observed_cell(observed: Observation) -> str:
    if observed.kind is None:
        return f"`{observed.outcome}`: {observed.details}"

    status = "none" if observed.status_code is None else str(observed.status_code)
    fields = [
        f"kind {observed.kind}",
        f"status {status}",
        f"network {_yes_no(observed.is_network_error)}",
        f"timeout {_yes_no(observed.is_timeout)}",
    ]
    if observed.request_sent is not None:
        fields.append(f"request_sent {_yes_no(observed.request_sent)}")

    return f"`{observed.outcome}`<br>" + ", ".join(fields)


def _yes_no(value: bool | None) -> str:
    return "yes" if value else "no"


def _leaks_cell(row: Row, observed: Observation) -> str:
    cell = f"{observed.tasks_delta:+d} / {observed.fds_delta:+d} / {observed.acquired}"
    if row.expected.max_rss_growth is not None:
        cell += f"<br>RSS +{observed.rss_growth / 2**20:.1f} MiB"

    return cell


def _differences(results: Sequence[RowResult]) -> list[str]:
    failed = [result for result in results if not result.matches]
    if not failed:
        return []

    lines = ["## Differences", ""]
    for result in failed:
        row = result.row
        bug = "" if row.expected.bug is None else f" Known bug: {row.expected.bug}."
        found = "; ".join(result.problems + result.leaks)
        lines.append(f"- {row.fault.title}, `{row.call.name}`: {found}.{bug}")

    lines.append("")
    return lines


def main() -> int:
    """Run the matrix, write the page, and return 1 when a row is unexplained."""
    # The engine logs every failed call at ERROR; the page records them instead.
    logger.remove()
    existing = DOC_PATH.read_text() if DOC_PATH.exists() else None
    soak = soak_section(existing)

    started = time.perf_counter()
    results = asyncio.run(run_matrix())
    runtime = time.perf_counter() - started

    # platform.machine() is what `uname -m` prints, and the CPUs this process
    # may run on are what `nproc` counts.
    page = render(
        results,
        soak=soak,
        runtime=runtime,
        machine=platform.machine(),
        cpus=len(os.sched_getaffinity(0)),
        day=datetime.now(UTC).date(),
    )
    DOC_PATH.write_text(page)

    # A row with a known bug is expected to differ. When it matches, the bug
    # was fixed and its note in the expectations must go.
    unexplained = [
        result.row.id
        for result in results
        if result.matches == (result.row.expected.bug is not None)
    ]
    print(f"wrote {DOC_PATH} with {len(results)} rows in {runtime:.1f} s")
    if unexplained:
        print(f"rows that differ from their expectation: {', '.join(unexplained)}")
        return 1

    return 0


if __name__ == "__main__":
    sys.exit(main())
