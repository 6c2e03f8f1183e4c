"""Collection of the stale cached reads served within one request."""

from __future__ import annotations

from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass

from app.scopes import ContextVarScope

__all__ = ["StaleRead", "collect_stale_reads", "note_stale_read"]


@dataclass(frozen=True, slots=True)
class StaleRead:
    """A cached value served after its time to live because the service failed."""

    service: str
    operation: str
    age: float
    """Seconds since the value was loaded."""


_collector: ContextVar[list[StaleRead] | None] = ContextVar("stale_reads", default=None)


def collect_stale_reads() -> AbstractContextManager[list[StaleRead]]:
    """Collect the stale reads of every proxy call made in the block.

    Tasks created inside the block share the list, so one collector covers a
    whole fan-out. Each block gets a new list. A collector nested inside
    another takes the reads of its own block, and the outer one does not see
    them.
    """
    return ContextVarScope(_collector, list)


def note_stale_read(read: StaleRead) -> None:
    """Add a stale read to the current collector, if one is active."""
    reads = _collector.get()
    if reads is not None:
        reads.append(read)
