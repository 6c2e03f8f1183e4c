"""Endpoint states: which base URLs of a service a proxy sends calls to."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EndpointState"]


@dataclass(frozen=True, slots=True)
class EndpointState:
    """One base URL of a service and whether the proxy uses it now."""

    url: str
    """The base URL, without credentials, since the settings reject them."""
    state: str
    """``active`` when the proxy sends calls to this URL."""
