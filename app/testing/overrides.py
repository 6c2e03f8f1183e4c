"""Overrides that tests apply to service settings and container providers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TypeVar

from dependency_injector import containers, providers

from app.settings import ServiceSettings

ContainerT = TypeVar("ContainerT", bound=containers.Container)


def instant_retries(settings: ServiceSettings) -> ServiceSettings:
    """Copy ``settings`` with zero retry waits, so retry tests never sleep.

    Backoff, jitter and Retry-After waits become zero; the retry count, the
    timeout and the deadline stay as they are.
    """
    return settings.model_copy(
        update={
            "backoff_initial": 0.0,
            "backoff_max": 0.0,
            "jitter": "none",
            "retry_after_max": 0.0,
        }
    )


@contextmanager
def override_providers(
    container: ContainerT, **replacements: object
) -> Iterator[ContainerT]:
    """Override each named provider of ``container`` with its value in the block.

    Each value replaces the provider as ``providers.Object(value)``. On exit each
    override is removed, and an override made before the block applies again.

    Raises:
        ValueError: a name is not a provider of ``container``. Nothing is
            overridden then.
    """
    known = container.providers
    unknown = sorted(name for name in replacements if name not in known)
    if unknown:
        names = ", ".join(sorted(known))
        message = f"unknown providers {unknown} in the container, expected {names}"
        raise ValueError(message)

    with ExitStack() as stack:
        for name, value in replacements.items():
            stack.enter_context(known[name].override(providers.Object(value)))
        yield container
