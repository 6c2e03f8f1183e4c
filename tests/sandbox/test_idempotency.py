"""Tests for the Idempotency-Key response store."""

from __future__ import annotations

import pytest

from app.sandbox.idempotency import IdempotencyStore, StoredResponse

FIRST = ("POST", "/a", "k1")
SECOND = ("POST", "/a", "k2")
THIRD = ("POST", "/a", "k3")


def _stored(status: int) -> StoredResponse:
    return StoredResponse(status=status, body=b"{}", content_type="application/json")


class TestIdempotencyStore:
    def test_put_then_get(self) -> None:
        """A stored response comes back for its key."""
        store = IdempotencyStore()
        store.put(FIRST, _stored(201))
        assert store.get(FIRST) == _stored(201)

    def test_get_unknown_is_none(self) -> None:
        """An unknown key has no stored response."""
        assert IdempotencyStore().get(FIRST) is None

    def test_evicts_least_recently_used(self) -> None:
        """Past the maximum, the least recently used key is dropped."""
        store = IdempotencyStore(max_entries=2)
        store.put(FIRST, _stored(201))
        store.put(SECOND, _stored(201))
        store.get(FIRST)
        store.put(THIRD, _stored(201))
        assert len(store) == 2
        assert store.get(SECOND) is None
        assert store.get(FIRST) is not None

    def test_default_maximum(self) -> None:
        """The default store keeps at most 10,000 responses."""
        store = IdempotencyStore()
        for number in range(10_001):
            store.put(("POST", "/a", str(number)), _stored(201))
        assert len(store) == 10_000
        assert store.get(("POST", "/a", "0")) is None

    def test_zero_maximum_raises(self) -> None:
        """A store must be able to keep one response."""
        with pytest.raises(ValueError, match="max_entries"):
            IdempotencyStore(max_entries=0)

    async def test_lock_table_empties(self) -> None:
        """Locks are dropped once no request holds or waits for them."""
        store = IdempotencyStore()
        async with store.locked(FIRST):
            pass
        assert store._locks == {}

    def test_replay_marks_header(self) -> None:
        """A replayed response carries Idempotent-Replayed: true."""
        response = _stored(409).replay()
        assert response.status == 409
        assert response.headers["Idempotent-Replayed"] == "true"
