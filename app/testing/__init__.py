"""Test kit: a scripted upstream, sandbox services, overrides and a pytest plugin."""

from app.testing.overrides import instant_retries, override_providers
from app.testing.sandbox import SandboxServices, serve_sandbox
from app.testing.upstream import (
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    ReceivedRequest,
    Reply,
    ScriptedUpstream,
    closed_port_url,
)

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HEADER_BYTES",
    "ReceivedRequest",
    "Reply",
    "SandboxServices",
    "ScriptedUpstream",
    "closed_port_url",
    "instant_retries",
    "override_providers",
    "serve_sandbox",
]
