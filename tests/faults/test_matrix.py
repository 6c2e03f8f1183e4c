"""Tests of the fault matrix: one per fault and call, and of its checks."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from app.proxies.errors import ServiceServerError
from tests.faults.matrix import (
    CALLS,
    FAULTS,
    ROWS,
    Expected,
    Observation,
    Row,
    compare,
    find_leaks,
    run_row,
)


def _row_params() -> list[Any]:
    params = []
    for row in ROWS:
        bug = row.expected.bug
        marks = [] if bug is None else [pytest.mark.xfail(strict=True, reason=bug)]
        params.append(pytest.param(row, id=row.id, marks=marks))

    return params


# An observation that matches _EXPECTED, for the tests of compare and find_leaks.
_EXPECTED = Expected(ServiceServerError, hits=(3, 3), attempts=3, status_code=503)
_OBSERVED = Observation(
    outcome="ServiceServerError",
    status_code=503,
    kind="server_error",
    is_network_error=False,
    is_timeout=False,
    request_sent=None,
    attempts=3,
    details="busy",
    hits=3,
    redirect_hits=0,
    elapsed=0.05,
    deadline=1.5,
    metrics={"calls_total{error}": 1.0, "retries_total": 2.0},
    tasks_delta=0,
    fds_delta=0,
    acquired=0,
    rss_growth=0,
)


class TestMatrix:
    @pytest.mark.parametrize("row", _row_params())
    async def test_row(self, row: Row) -> None:
        """The call meets its expectation and leaves nothing open behind it."""
        observed = await run_row(row)

        assert compare(row.expected, observed) == []
        assert find_leaks(observed) == []

    def test_every_fault_twice(self) -> None:
        """Each fault runs through both calls, once each."""
        pairs = {(row.fault.name, row.call.name) for row in ROWS}

        assert len(ROWS) == len(FAULTS) * len(CALLS)
        assert len(pairs) == len(ROWS)


class TestChecks:
    def test_match(self) -> None:
        """An observation that meets its expectation has no differences."""
        assert compare(_EXPECTED, _OBSERVED) == []

    @pytest.mark.parametrize(
        ("fields", "problem"),
        [
            ({"outcome": "ok"}, "outcome ok"),
            ({"hits": 1}, "upstream hits 1"),
            ({"attempts": 1}, "attempts 1"),
            ({"status_code": 502}, "status_code 502"),
            ({"redirect_hits": 1}, "redirect was followed"),
            ({"metrics": {"calls_total{error}": 1.0}}, "retries_total is 0"),
            ({"elapsed": 1.7}, "past the 1.5 s deadline"),
        ],
    )
    def test_mismatch(self, fields: dict[str, Any], problem: str) -> None:
        """Each kind of difference is reported in words."""
        problems = compare(_EXPECTED, replace(_OBSERVED, **fields))

        assert any(problem in text for text in problems), problems

    @pytest.mark.parametrize(
        ("fields", "leak"),
        [
            ({"tasks_delta": 1}, "pending tasks"),
            ({"fds_delta": 2}, "file descriptors"),
            ({"acquired": 1}, "still acquired"),
        ],
    )
    def test_leak(self, fields: dict[str, Any], leak: str) -> None:
        """A task, descriptor or connection left behind is a leak."""
        leaks = find_leaks(replace(_OBSERVED, **fields))

        assert len(leaks) == 1
        assert leak in leaks[0]

    def test_closed_after_row(self) -> None:
        """Fewer tasks or descriptors after a row than before are no leak."""
        observed = replace(_OBSERVED, tasks_delta=-1, fds_delta=-3)

        assert find_leaks(observed) == []
