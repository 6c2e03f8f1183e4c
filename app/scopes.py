"""A context manager that sets a context variable for the length of a block."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Generic, TypeVar

__all__ = ["ContextVarScope"]

T = TypeVar("T")


class ContextVarScope(Generic[T]):
    """Set ``variable``, whose default is None, for the length of a block.

    Entering the block calls ``make_value`` and sets the variable to what it
    returns, which the block gets too. After the block the variable gets its
    old value back. This is a class rather than a ``contextlib.contextmanager``
    generator because the gateway enters several of these on every request,
    and a generator-based one costs a generator and its wrapper each time.
    """

    __slots__ = ("_make_value", "_token", "_variable")

    def __init__(
        self, variable: ContextVar[T | None], make_value: Callable[[], T]
    ) -> None:
        self._variable = variable
        self._make_value = make_value
        self._token: Token[T | None] | None = None

    def __enter__(self) -> T:
        if self._token is not None:
            message = "this scope is already entered; make a new one for each block"
            raise RuntimeError(message)
        value = self._make_value()
        self._token = self._variable.set(value)
        return value

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        token = self._token
        if token is not None:
            # Cleared first, so that a reset that fails in another context
            # still leaves the scope usable.
            self._token = None
            self._variable.reset(token)
