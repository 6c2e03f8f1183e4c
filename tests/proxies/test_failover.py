"""Calls to a service with several endpoints, over loopback to scripted upstreams."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from app.metrics import ProxyMetrics
from app.proxies import (
    CircuitOpenError,
    ServiceClientError,
    ServiceConnectionError,
    ServiceDeadlineError,
    ServiceRedirectError,
    ServiceServerError,
    UserServiceProxy,
)
from app.proxies.endpoints import ACTIVE, EJECTED
from app.resilience.breaker import CircuitState
from app.testing import Reply, ScriptedUpstream, closed_port_url
from tests.helpers import service_settings

OK: dict[str, Any] = {"ok": True}
DOWN = Reply.json({"message": "down"}, 503)
# Ejection after 3 failures in a row; no retry budget, so that it never limits.
OUTLIER: dict[str, Any] = {
    "outlier_consecutive_failures": 3,
    "budget_enabled": False,
}


@pytest.fixture
async def second_upstream() -> AsyncIterator[ScriptedUpstream]:
    """Start a second scripted upstream, the other endpoint of the service."""
    async with ScriptedUpstream() as server:
        yield server


ProxyBuilder = Callable[..., UserServiceProxy]


@pytest.fixture
def proxy_for(session: aiohttp.ClientSession, metrics: ProxyMetrics) -> ProxyBuilder:
    """Build proxies over several endpoints with shrunken waits."""

    def build(urls: list[str], **overrides: Any) -> UserServiceProxy:
        settings = service_settings(",".join(urls), **{**OUTLIER, **overrides})
        return UserServiceProxy(session, settings, metrics)

    return build


async def call_times(proxy: UserServiceProxy, count: int) -> None:
    """Make ``count`` GET calls one after another; each must succeed."""
    for _ in range(count):
        assert await proxy.get("/users/1") == OK


class TestSpreading:
    """Attempts are spread over the endpoints."""

    async def test_calls_alternate_between_endpoints(
        self,
        proxy_for: ProxyBuilder,
        upstream: ScriptedUpstream,
        second_upstream: ScriptedUpstream,
    ) -> None:
        """Sequential calls to two healthy endpoints split evenly."""
        upstream.script(Reply.json(OK))
        second_upstream.script(Reply.json(OK))
        proxy = proxy_for([upstream.url, second_upstream.url])

        await call_times(proxy, 10)

        assert upstream.hits == 5
        assert second_upstream.hits == 5

    async def test_concurrent_calls_avoid_busy_endpoint(
        self,
        proxy_for: ProxyBuilder,
        upstream: ScriptedUpstream,
        second_upstream: ScriptedUpstream,
    ) -> None:
        """A slow endpoint keeps its attempt in flight; the fast one gets the rest."""
        upstream.script(Reply(body=OK, delay_headers=0.5))
        second_upstream.script(Reply.json(OK))
        proxy = proxy_for([upstream.url, second_upstream.url])
        slow = asyncio.create_task(proxy.get("/users/1"))
        await asyncio.sleep(0.05)

        await call_times(proxy, 6)
        await slow

        assert upstream.hits == 1
        assert second_upstream.hits == 6


class TestRetryOnOtherEndpoint:
    """A retry goes to an endpoint that this call has not used."""

    async def test_get_retried_on_other_endpoint(
        self,
        proxy_for: ProxyBuilder,
        upstream: ScriptedUpstream,
        second_upstream: ScriptedUpstream,
    ) -> None:
        """Every call whose first attempt gets a 503 succeeds on the other endpoint."""
        upstream.script(DOWN)
        second_upstream.script(Reply.json(OK))
        proxy = proxy_for(
            [upstream.url, second_upstream.url],
            outlier_enabled=False,
        )

        await call_times(proxy, 6)

        # Ties alternate per attempt, so every call starts on the failing one.
        assert upstream.hits == 6
        assert second_upstream.hits == 6

    async def test_retry_prefers_busier_unused_endpoint(
        self,
        proxy_for: ProxyBuilder,
        upstream: ScriptedUpstream,
        second_upstream: ScriptedUpstream,
    ) -> None:
        """A retry skips the endpoint that failed, though it has fewer in flight."""
        upstream.script(DOWN)
        second_upstream.route("/slow", Reply(body=OK, delay_headers=0.5))
        second_upstream.script(Reply.json(OK))
        proxy = proxy_for(
            [upstream.url, second_upstream.url],
            outlier_enabled=False,
        )
        slow = asyncio.create_task(proxy.get("/slow"))
        for _ in range(100):
            if second_upstream.hits:
                break
            await asyncio.sleep(0.01)

        result = await proxy.get("/users/1")
        await slow

        assert result == OK
        assert upstream.hits_for("/users/1") == 1
        assert second_upstream.hits_for("/users/1") == 1

    async def test_post_without_key_not_repeated(
        self,
        proxy_for: ProxyBuilder,
        upstream: ScriptedUpstream,
        second_upstream: ScriptedUpstream,
    ) -> None:
        """A POST that reached an endpoint is not sent to another without a key."""
        upstream.script(DOWN)
        second_upstream.script(Reply.json(OK))
        proxy = proxy_for([upstream.url, second_upstream.url])

        with pytest.raises(ServiceServerError):
            await proxy.post("/users/1/quota/reservations", {})

        assert upstream.hits == 1
        assert second_upstream.hits == 0

    async def test_post_with_key_retried_on_other_endpoint(
        self,
        proxy_for: ProxyBuilder,
        upstream: ScriptedUpstream,
        second_upstream: ScriptedUpstream,
    ) -> None:
        """A keyed POST moves to the other endpoint with the same key."""
        upstream.script(DOWN)
        second_upstream.script(Reply.json(OK))
        proxy = proxy_for([upstream.url, second_upstream.url])
        headers = {"Idempotency-Key": "key-1"}

        result = await proxy.post("/users/1/quota/reservations", {}, headers=headers)

        assert result == OK
        first_key = upstream.requests[0].headers["idempotency-key"]
        second_key = second_upstream.requests[0].headers["idempotency-key"]
        assert first_key == "key-1"
        assert second_key == "key-1"

    async def test_post_refused_before_sending_moves_on(
        self,
        proxy_for: ProxyBuilder,
        second_upstream: ScriptedUpstream,
    ) -> None:
        """A POST whose connection was refused is safe to send to another endpoint."""
        second_upstream.script(Reply.json(OK))
        proxy = proxy_for([closed_port_url(), second_upstream.url])

        result = await proxy.post("/users/1/quota/reservations", {})

        assert result == OK
        assert second_upstream.hits == 1


class TestOutlierEjection:
    """Failing endpoints are ejected and the others carry the calls."""

    async def test_refusing_endpoint_ejected(
        self,
        proxy_for: ProxyBuilder,
        second_upstream: ScriptedUpstream,
    ) -> None:
        """An endpoint that refuses connections is ejected after 3 attempts."""
        second_upstream.script(Reply.json(OK))
        dead = closed_port_url()
        proxy = proxy_for([dead, second_upstream.url])

        await call_times(proxy, 10)

        states = {state.url: state for state in proxy.endpoint_states()}
        assert states[dead].state == EJECTED
        assert states[dead].ejections == 1
        assert states[second_upstream.url].state == ACTIVE
        assert second_upstream.hits == 10

    async def test_hanging_endpoint_ejected(
        self,
        proxy_for: ProxyBuilder,
        upstream: ScriptedUpstream,
        second_upstream: ScriptedUpstream,
    ) -> None:
        """Timeouts count as failures: a hanging endpoint is ejected too."""
        upstream.script(Reply(hang=True))
        second_upstream.script(Reply.json(OK))
        # 0.5 s, because with 0.2 s two full test runs saw the hanging endpoint
        # get 2 of its 3 attempts: likely the loop, busy late in a long run,
        # sent one only after its timeout had passed.
        proxy = proxy_for([upstream.url, second_upstream.url], timeout=0.5)

        await call_times(proxy, 8)

        assert upstream.hits == 3
        assert proxy.endpoint_states()[0].state == EJECTED

    async def test_endpoint_cut_by_deadlines_ejected(
        self,
        proxy_for: ProxyBuilder,
        upstream: ScriptedUpstream,
        second_upstream: ScriptedUpstream,
    ) -> None:
        """Attempts that hang until the caller's deadline count once slow enough."""
        upstream.script(Reply(hang=True))
        second_upstream.script(Reply.json(OK))
        proxy = proxy_for(
            [upstream.url, second_upstream.url], timeout=1.0, breaker_slow_call=0.1
        )

        for _ in range(8):
            with contextlib.suppress(ServiceDeadlineError):
                await proxy.get("/x", deadline=0.15)

        assert upstream.hits == 3
        assert proxy.endpoint_states()[0].state == EJECTED

    async def test_client_errors_never_eject(
        self,
        proxy_for: ProxyBuilder,
        upstream: ScriptedUpstream,
        second_upstream: ScriptedUpstream,
    ) -> None:
        """An endpoint that returns 404 is working and stays active."""
        upstream.script(Reply.json({"message": "not found"}, 404))
        second_upstream.script(Reply.json({"message": "not found"}, 404))
        proxy = proxy_for([upstream.url, second_upstream.url])

        for _ in range(10):
            with pytest.raises(ServiceClientError):
                await proxy.get("/users/1")

        states = [state.state for state in proxy.endpoint_states()]
        assert states == [ACTIVE, ACTIVE]

    async def test_endpoint_readmitted_after_ejection(
        self,
        proxy_for: ProxyBuilder,
        upstream: ScriptedUpstream,
        second_upstream: ScriptedUpstream,
    ) -> None:
        """A recovered endpoint takes calls again once its ejection time is over."""
        upstream.script(DOWN)
        second_upstream.script(Reply.json(OK))
        proxy = proxy_for(
            [upstream.url, second_upstream.url],
            outlier_base_ejection_time=0.2,
        )
        await call_times(proxy, 4)
        ejected = proxy.endpoint_states()[0].state
        upstream.script(Reply.json(OK))
        upstream.reset()

        await asyncio.sleep(0.25)
        await call_times(proxy, 4)

        assert ejected == EJECTED
        assert proxy.endpoint_states()[0].state == ACTIVE
        assert upstream.hits == 2


class TestRetryAfterWithEndpoints:
    """A Retry-After holds back its endpoint, and the service only when all ask."""

    async def test_retry_after_moves_calls_elsewhere(
        self,
        proxy_for: ProxyBuilder,
        upstream: ScriptedUpstream,
        second_upstream: ScriptedUpstream,
    ) -> None:
        """A 503 with Retry-After sends the retry and later calls to the other."""
        busy = {"message": "busy"}
        upstream.script(Reply.json(busy, 503, headers={"Retry-After": "30"}))
        second_upstream.script(Reply.json(OK))
        proxy = proxy_for(
            [upstream.url, second_upstream.url],
            outlier_enabled=False,
        )
        started = time.monotonic()

        await call_times(proxy, 5)

        assert time.monotonic() - started < 1.0
        assert upstream.hits == 1
        assert second_upstream.hits == 5
        assert proxy.engine.cooldown.remaining() == 0.0

    async def test_retry_after_from_all_holds_service(
        self,
        proxy_for: ProxyBuilder,
        upstream: ScriptedUpstream,
        second_upstream: ScriptedUpstream,
    ) -> None:
        """When every endpoint sends Retry-After, every caller waits."""
        busy = Reply.json({"message": "busy"}, 503, headers={"Retry-After": "30"})
        upstream.script(busy)
        second_upstream.script(busy)
        proxy = proxy_for(
            [upstream.url, second_upstream.url],
            outlier_enabled=False,
            timeout=0.5,
            deadline=2.0,
        )

        with pytest.raises(ServiceServerError):
            await proxy.get("/users/1")

        assert upstream.hits == 1
        assert second_upstream.hits == 1
        assert proxy.engine.cooldown.remaining() > 25.0


class TestCircuitWithEndpoints:
    """The service's circuit opens only when the service, not one endpoint, fails."""

    async def test_one_dead_endpoint_keeps_circuit_closed(
        self,
        proxy_for: ProxyBuilder,
        second_upstream: ScriptedUpstream,
    ) -> None:
        """Losing one of two endpoints leaves the circuit closed.

        Without retries every first attempt to the dead endpoint fails its call,
        which would reach the breaker's failure ratio of 0.5 if counted.
        """
        second_upstream.script(Reply.json(OK))
        proxy = proxy_for(
            [closed_port_url(), second_upstream.url],
            retries=0,
            breaker_minimum_calls=4,
        )
        failures = 0

        for _ in range(12):
            try:
                await proxy.get("/users/1")
            except ServiceConnectionError:
                failures += 1

        breaker = proxy.engine.breaker
        assert breaker is not None
        assert breaker.state is CircuitState.CLOSED
        assert failures == 3
        assert proxy.endpoint_states()[0].state == EJECTED

    async def test_every_endpoint_dead_opens_circuit(
        self, proxy_for: ProxyBuilder
    ) -> None:
        """When every endpoint fails, the circuit opens as for one endpoint."""
        proxy = proxy_for(
            [closed_port_url(), closed_port_url()],
            retries=0,
            breaker_minimum_calls=4,
        )

        errors: list[type[Exception]] = []
        for _ in range(12):
            try:
                await proxy.get("/users/1")
            except (ServiceConnectionError, CircuitOpenError) as exc:
                errors.append(type(exc))

        assert errors[-1] is CircuitOpenError
        breaker = proxy.engine.breaker
        assert breaker is not None
        assert breaker.state is CircuitState.OPEN


class TestRedirectsWithEndpoints:
    """A redirect stays on the endpoint its attempt went to."""

    async def test_redirect_to_other_endpoint_rejected(
        self,
        proxy_for: ProxyBuilder,
        upstream: ScriptedUpstream,
        second_upstream: ScriptedUpstream,
    ) -> None:
        """A Location on another endpoint's origin is rejected unfollowed."""
        location = f"{second_upstream.url}/users/2"
        upstream.script(Reply(302, headers={"Location": location}))
        second_upstream.script(Reply.json(OK))
        proxy = proxy_for(
            [upstream.url, second_upstream.url],
            follow_redirects=True,
        )

        with pytest.raises(ServiceRedirectError):
            await proxy.get("/users/1")

        assert second_upstream.hits == 0

    async def test_redirect_on_same_endpoint_followed(
        self,
        proxy_for: ProxyBuilder,
        upstream: ScriptedUpstream,
        second_upstream: ScriptedUpstream,
    ) -> None:
        """A relative Location is followed on the second endpoint's own origin."""
        upstream.script(Reply.json(OK))
        second_upstream.route("/users/1", Reply(302, headers={"Location": "/users/2"}))
        second_upstream.route("/users/2", Reply.json(OK))
        proxy = proxy_for(
            [upstream.url, second_upstream.url],
            follow_redirects=True,
        )

        await call_times(proxy, 2)

        assert second_upstream.hits_for("/users/2") == 1


class TestHealthWithEndpoints:
    """check_health reports every endpoint."""

    async def test_one_endpoint_up_is_reachable(
        self,
        proxy_for: ProxyBuilder,
        second_upstream: ScriptedUpstream,
    ) -> None:
        """The service is reachable while one endpoint passes its health check."""
        second_upstream.script(Reply.json({"status": "ok"}))
        dead = closed_port_url()
        proxy = proxy_for([dead, second_upstream.url])

        report = await proxy.check_health()

        assert report.reachable
        assert report.status_code == 200
        assert [endpoint.url for endpoint in report.endpoints] == [
            dead,
            second_upstream.url,
        ]
        assert not report.endpoints[0].reachable
        assert report.endpoints[0].error is not None
        assert report.endpoints[1].healthy

    async def test_every_endpoint_down_unreachable(
        self, proxy_for: ProxyBuilder
    ) -> None:
        """The service is unreachable when no endpoint responds."""
        proxy = proxy_for([closed_port_url(), closed_port_url()])

        report = await proxy.check_health()

        assert not report.reachable
        assert report.status_code is None
        assert report.error is not None
        assert len(report.endpoints) == 2

    async def test_ejected_endpoint_not_healthy(
        self,
        proxy_for: ProxyBuilder,
        upstream: ScriptedUpstream,
        second_upstream: ScriptedUpstream,
    ) -> None:
        """An endpoint ejected for 5xx on calls is reported ejected and unhealthy."""
        upstream.route("/users/1", DOWN)
        upstream.route("/health", Reply.json({"status": "ok"}))
        second_upstream.script(Reply.json(OK))
        proxy = proxy_for([upstream.url, second_upstream.url])
        await call_times(proxy, 6)

        report = await proxy.check_health()

        assert report.endpoints[0].state == EJECTED
        assert report.endpoints[0].reachable
        assert not report.endpoints[0].healthy
        assert report.reachable
