"""Idempotency-Key replay for POST, PATCH and DELETE requests of a sandbox service."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from app.sandbox.common import ApiError, api_error_response

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_STORED_RESPONSES = 10_000
# DELETE is idempotent in its effect, but its response is not, because a
# repeated DELETE gets 404. Replaying the first response lets a retried release
# report success.
IDEMPOTENT_METHODS = frozenset({"POST", "PATCH", "DELETE"})

StoreKey = tuple[str, str, str]


@dataclass(frozen=True)
class StoredResponse:
    """Status, body and content type of the first response sent for a key."""

    status: int
    body: bytes
    content_type: str

    def replay(self) -> web.Response:
        """Build a copy of the stored response marked as replayed."""
        return web.Response(
            status=self.status,
            body=self.body,
            content_type=self.content_type,
            headers={REPLAYED_HEADER: "true"},
        )


class IdempotencyStore:
    """LRU of first responses keyed by (method, path, Idempotency-Key)."""

    def __init__(self, *, max_entries: int = MAX_STORED_RESPONSES) -> None:
        if max_entries < 1:
            message = f"max_entries must be at least 1, got {max_entries}"
            raise ValueError(message)
        self._max_entries = max_entries
        self._responses: OrderedDict[StoreKey, StoredResponse] = OrderedDict()
        self._locks: dict[StoreKey, asyncio.Lock] = {}
        self._lock_users: dict[StoreKey, int] = {}

    def __len__(self) -> int:
        return len(self._responses)

    def get(self, key: StoreKey) -> StoredResponse | None:
        """Return the stored response for ``key`` and mark it recently used."""
        stored = self._responses.get(key)
        if stored is not None:
            self._responses.move_to_end(key)
        return stored

    def put(self, key: StoreKey, stored: StoredResponse) -> None:
        """Store ``stored`` under ``key``, evicting the least recently used entry."""
        self._responses[key] = stored
        self._responses.move_to_end(key)
        while len(self._responses) > self._max_entries:
            self._responses.popitem(last=False)

    @asynccontextmanager
    async def locked(self, key: StoreKey) -> AsyncIterator[None]:
        """Hold the lock of ``key`` so concurrent requests with it run one by one."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._lock_users[key] = self._lock_users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._release(key)

    def _release(self, key: StoreKey) -> None:
        # Drop the lock once no request holds or waits for it, so the lock table
        # stays as small as the number of requests in flight.
        self._lock_users[key] -= 1
        if self._lock_users[key] == 0:
            del self._lock_users[key]
            del self._locks[key]


def make_idempotency_middleware(store: IdempotencyStore) -> Middleware:
    """Create a middleware that replays POST, PATCH and DELETE responses by key.

    Responses to an `ApiError` are stored like successes. An unexpected exception
    stores nothing, so a client may retry with the same key.
    """

    @web.middleware
    async def idempotency_middleware(
        request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        idempotency_key = request.headers.get(IDEMPOTENCY_HEADER)
        if request.method not in IDEMPOTENT_METHODS or idempotency_key is None:
            return await handler(request)

        key = (request.method, request.path, idempotency_key)
        async with store.locked(key):
            stored = store.get(key)
            if stored is not None:
                return stored.replay()

            response = await _respond(request, handler)
            store.put(key, _snapshot(response))
            return response

    return idempotency_middleware


async def _respond(request: web.Request, handler: Handler) -> web.Response:
    try:
        response = await handler(request)
    except ApiError as exc:
        return api_error_response(request, exc)
    if not isinstance(response, web.Response):
        message = "Idempotent handlers must return a web.Response with a body"
        raise TypeError(message)
    return response


def _snapshot(response: web.Response) -> StoredResponse:
    body = b"" if response.body is None else response.body
    if not isinstance(body, bytes):
        message = f"Cannot store a response body of type {type(body).__name__}"
        raise TypeError(message)
    return StoredResponse(
        status=response.status,
        body=body,
        content_type=response.content_type,
    )
