"""Tests of the fault-matrix page: the load-test section and the table."""

from __future__ import annotations

from datetime import date

import pytest

from tests.faults.matrix import ROWS, Observation
from tests.faults.report import SOAK_END, SOAK_START, RowResult, render, soak_section

_SOAK = f"{SOAK_START}\n## Soak\n\n| rps | p99 |\n|---|---|\n| 10 | 3 ms |\n{SOAK_END}"


def _result(problems: list[str]) -> RowResult:
    row = ROWS[0]
    observed = Observation(
        outcome="ServiceConnectionError",
        status_code=None,
        kind="connection",
        is_network_error=True,
        is_timeout=False,
        request_sent=False,
        attempts=3,
        details="could not connect",
        hits=0,
        redirect_hits=0,
        elapsed=0.031,
        deadline=1.5,
        metrics={"calls_total{error}": 1.0, "retries_total": 2.0},
        tasks_delta=0,
        fds_delta=0,
        acquired=0,
        rss_growth=0,
    )
    return RowResult(row, observed, problems, [])


def _page(results: list[RowResult], soak: str = _SOAK) -> str:
    return render(
        results, soak=soak, runtime=1.0, machine="x86_64", cpus=2, day=date(2026, 3, 1)
    )


class TestSoakSection:
    def test_new_file(self) -> None:
        """Without a page, the markers surround a one-line placeholder."""
        section = soak_section(None)

        assert section.startswith(f"{SOAK_START}\n")
        assert section.endswith(f"\n{SOAK_END}")
        assert section.count("\n") == 2

    def test_kept(self) -> None:
        """The text between the markers survives, whatever surrounds it."""
        existing = f"# Old page\n\nold table\n\n{_SOAK}\n\ntrailing text\n"

        assert soak_section(existing) == _SOAK

    def test_no_markers(self) -> None:
        """A page without markers gets the placeholder."""
        assert soak_section("# Old page\n") == soak_section(None)

    @pytest.mark.parametrize(
        "existing",
        [
            f"{SOAK_START}\nresults\n",
            f"results\n{SOAK_END}\n",
            f"{SOAK_END}\n{SOAK_START}",
        ],
    )
    def test_broken_markers(self, existing: str) -> None:
        """A page with one marker, or both out of order, raises ValueError."""
        with pytest.raises(ValueError, match="followed by"):
            soak_section(existing)


class TestRender:
    def test_round_trip(self) -> None:
        """A rendered page keeps its load-test section when rendered again."""
        page = _page([_result([])])

        assert soak_section(page) == _SOAK
        assert _page([_result([])], soak=soak_section(page)) == page

    def test_row(self) -> None:
        """A row shows its call, observed class, attempts and a match mark."""
        page = _page([_result([])])
        row = next(line for line in page.splitlines() if "`get_user`" in line)

        assert "`ServiceConnectionError`<br>kind connection" in row
        assert "| 3 / 0 |" in row
        assert row.endswith("| ✓ |")

    def test_difference(self) -> None:
        """A row that differs is marked and its differences are listed."""
        page = _page([_result(["attempts 1, expected 3"])])

        assert "| ✗ |" in page
        assert "attempts 1, expected 3" in page
