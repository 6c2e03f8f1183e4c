"""The middleware chain that both sandbox services run, outermost first."""

from __future__ import annotations

from aiohttp.typedefs import Middleware

from app.sandbox.common import make_error_middleware, make_latency_middleware
from app.sandbox.deadline import make_deadline_middleware
from app.sandbox.faults import SandboxFaults, make_faults_middleware
from app.sandbox.idempotency import IdempotencyStore, make_idempotency_middleware


def build_middlewares(
    service: str, *, latency_ms: float, faults: SandboxFaults | None
) -> list[Middleware]:
    """Build the middlewares of ``service`` in the order that aiohttp runs them.

    The deadline wraps the latency delay, so a budget shorter than the latency
    gives 504. The faults and the Idempotency-Key store run inside the deadline, so
    a request cut short stores no response and takes no fault. The faults run
    outside the store, so an injected failure is never stored and a dropped
    request's response is stored before the drop. Without ``faults`` the faults
    middleware is left out.
    """
    middlewares = [
        make_error_middleware(service),
        make_deadline_middleware(),
        make_latency_middleware(latency_ms),
    ]
    if faults is not None:
        middlewares.append(make_faults_middleware(faults))
    middlewares.append(make_idempotency_middleware(IdempotencyStore()))
    return middlewares
