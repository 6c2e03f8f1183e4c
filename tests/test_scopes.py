"""The scopes built on ContextVarScope: deadlines, request ids, stale reads."""

from __future__ import annotations

import math
import time

import pytest

from app.correlation import current_request_id, request_id_scope
from app.proxies.staleness import StaleRead, collect_stale_reads, note_stale_read
from app.resilience.deadline import current_deadline, deadline_scope


class TestDeadlineScope:
    def test_nested_scope_only_shortens(self) -> None:
        with deadline_scope(1.0) as outer, deadline_scope(10.0) as inner:
            assert inner == outer
            assert current_deadline() == outer
        assert current_deadline() is None

    def test_scope_built_early_still_only_shortens(self) -> None:
        long = deadline_scope(10.0)
        with deadline_scope(1.0) as outer, long as inner:
            assert inner == outer

    def test_deadline_counts_from_entering(self) -> None:
        scope = deadline_scope(0.5)
        time.sleep(0.05)
        entered = time.monotonic()
        with scope as deadline:
            assert deadline >= entered + 0.5

    @pytest.mark.parametrize("seconds", [-1.0, math.nan])
    def test_invalid_seconds_rejected(self, seconds: float) -> None:
        with pytest.raises(ValueError, match="0 seconds or more"):
            deadline_scope(seconds)


class TestRequestIdScope:
    def test_id_set_in_block_only(self) -> None:
        with request_id_scope("abc") as request_id:
            assert request_id == "abc"
            assert current_request_id() == "abc"
        assert current_request_id() is None

    def test_reset_after_an_error(self) -> None:
        with pytest.raises(KeyError), request_id_scope("abc"):
            raise KeyError("boom")
        assert current_request_id() is None

    def test_entering_one_scope_twice_fails(self) -> None:
        scope = request_id_scope("abc")
        with scope, pytest.raises(RuntimeError, match="already entered"), scope:
            pass
        assert current_request_id() is None


class TestCollectStaleReads:
    def test_each_block_gets_a_new_list(self) -> None:
        scope = collect_stale_reads()
        with scope as first:
            note_stale_read(StaleRead("user-service", "get_user", 1.0))
        with scope as second:
            pass
        assert len(first) == 1
        assert second == []
