"""Request deadlines that the caller sends in ``X-Request-Deadline-Ms``."""

from __future__ import annotations

import asyncio
import re

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from app.sandbox.common import ApiError

DEADLINE_HEADER = "X-Request-Deadline-Ms"
EXPIRED_BEFORE_START_MESSAGE = "deadline exceeded before the work started"
EXPIRED_MESSAGE = "deadline exceeded"

# A sign and at most 18 digits, so every accepted value fits in a signed 64-bit
# integer. The sign is matched only to reject negative values with their own message.
_MILLISECONDS = re.compile(r"-?[0-9]{1,18}")


def make_deadline_middleware() -> Middleware:
    """Create a middleware that gives up with 504 once the caller's budget is spent.

    The budget in ``X-Request-Deadline-Ms`` is relative, in milliseconds, so the
    clocks of caller and sandbox need not agree. Cancellation reaches the handler
    only at an ``await``, and the sandbox handlers mutate their state after their
    last ``await``, so a request cut short has changed nothing.
    """

    @web.middleware
    async def deadline_middleware(
        request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        budget_ms = parse_deadline(request.headers.get(DEADLINE_HEADER))
        if budget_ms is None:
            return await handler(request)
        if budget_ms == 0:
            raise ApiError(504, EXPIRED_BEFORE_START_MESSAGE)

        try:
            async with asyncio.timeout(budget_ms / 1000) as scope:
                return await handler(request)
        except TimeoutError:
            # A TimeoutError that the handler raised itself is not the deadline.
            if not scope.expired():
                raise
            raise ApiError(504, EXPIRED_MESSAGE) from None

    return deadline_middleware


def parse_deadline(raw: str | None) -> int | None:
    """Return the budget in milliseconds, ``None`` without a header.

    Raises:
        ApiError: 400 when the value is not an integer or is negative.
    """
    if raw is None:
        return None
    if not _MILLISECONDS.fullmatch(raw):
        message = (
            f"Header '{DEADLINE_HEADER}' must be an integer number of milliseconds "
            f"of at most 18 digits, got '{raw}'."
        )
        raise ApiError(400, message)

    budget_ms = int(raw)
    if budget_ms < 0:
        message = f"Header '{DEADLINE_HEADER}' must be zero or positive, got {raw}."
        raise ApiError(400, message)
    return budget_ms
