"""EndpointSet: the picker and outlier detection, on a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from loguru import logger
from prometheus_client import CollectorRegistry

from app.metrics import ProxyMetrics
from app.proxies import (
    ServiceClientError,
    ServiceConnectionError,
    ServiceDeadlineError,
    ServiceDecodeError,
    ServiceIncompleteBodyError,
    ServiceProxyError,
    ServiceServerError,
    ServiceSessionClosedError,
    ServiceTimeoutError,
)
from app.proxies.endpoints import (
    ACTIVE,
    EJECTED,
    Endpoint,
    EndpointSet,
    EndpointState,
    is_endpoint_failure,
)
from app.resilience.clock import ManualClock
from tests.helpers import sample

SERVICE = "user-service"
URLS = ("http://127.0.0.1:8001", "http://127.0.0.1:8002", "http://127.0.0.1:8003")


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """Collect the message of every WARNING or higher log record."""
    lines: list[str] = []
    sink_id = logger.add(lines.append, level="WARNING", format="{message}")
    yield lines
    logger.remove(sink_id)


def build(
    urls: tuple[str, ...] = URLS,
    *,
    registry: CollectorRegistry | None = None,
    clock: ManualClock | None = None,
    **options: Any,
) -> EndpointSet:
    """Build an endpoint set that ejects after 3 failures for 10 s, up to 40 s."""
    settings: dict[str, Any] = {
        "consecutive_failures": 3,
        "base_ejection_time": 10.0,
        "max_ejection_time": 40.0,
        "max_ejection_percent": 50,
        **options,
    }
    return EndpointSet(
        SERVICE,
        urls,
        ProxyMetrics(registry or CollectorRegistry()),
        clock=clock or ManualClock(),
        **settings,
    )


def fail(endpoints: EndpointSet, endpoint: Endpoint, times: int) -> None:
    """Record ``times`` failed attempts of ``endpoint``."""
    for _ in range(times):
        endpoints.record_failure(endpoint)


def pick_urls(endpoints: EndpointSet, count: int) -> list[str]:
    """Pick ``count`` times, releasing each pick at once, and list the URLs."""
    urls = []
    for _ in range(count):
        endpoint = endpoints.pick()
        endpoints.release(endpoint)
        urls.append(endpoint.url)
    return urls


def error(kind: type[ServiceProxyError], status: int | None = None) -> Any:
    """Build an attempt error of class ``kind``."""
    return kind(SERVICE, status, "scripted", method="GET", path="/users/1")


class TestPicker:
    """Least attempts in flight, round-robin among ties, previous hosts avoided."""

    def test_ties_go_round_robin(self) -> None:
        """With nothing in flight, picks cycle through the endpoints in order."""
        endpoints = build()

        assert pick_urls(endpoints, 6) == [*URLS, *URLS]

    def test_fewest_outstanding_wins(self) -> None:
        """An endpoint with attempts in flight is passed over for idle ones."""
        endpoints = build()
        busy = endpoints.pick()
        busy_again = endpoints.pick()

        picked = pick_urls(endpoints, 4)

        assert busy.url not in picked
        assert busy_again.url not in picked
        assert picked == [URLS[2]] * 4

    def test_outstanding_counts_released(self) -> None:
        """A released attempt no longer counts against its endpoint."""
        endpoints = build()
        first = endpoints.pick()
        second = endpoints.pick()
        endpoints.release(first)

        assert first.outstanding == 0
        assert second.outstanding == 1

    def test_retry_avoids_previous_endpoints(self) -> None:
        """A pick passed the endpoints of earlier attempts chooses another one."""
        endpoints = build()
        first, second, third = endpoints.endpoints

        for _ in range(6):
            endpoint = endpoints.pick([first, second])
            endpoints.release(endpoint)
            assert endpoint is third

    def test_previous_endpoints_reused_when_no_other(self) -> None:
        """When every active endpoint was used, the least loaded one is reused."""
        endpoints = build(URLS[:2])
        first, second = endpoints.endpoints
        endpoints.pick([first, second])  # one attempt stays in flight

        endpoint = endpoints.pick([first, second])

        assert endpoint.outstanding == 1

    def test_ejected_endpoint_not_picked(self) -> None:
        """No pick lands on an ejected endpoint."""
        endpoints = build()
        first = endpoints.endpoints[0]
        fail(endpoints, first, 3)

        picked = pick_urls(endpoints, 10)

        assert URLS[0] not in picked
        assert set(picked) == {URLS[1], URLS[2]}

    def test_attempts_counted_per_endpoint(self) -> None:
        """service_endpoint_attempts_total counts the picks of each endpoint."""
        registry = CollectorRegistry()
        endpoints = build(registry=registry)

        pick_urls(endpoints, 7)

        counts = [
            sample(
                registry,
                "service_endpoint_attempts_total",
                service=SERVICE,
                endpoint=url,
            )
            for url in URLS
        ]
        assert counts == [3.0, 2.0, 2.0]

    def test_single_endpoint_counts_no_attempts(self) -> None:
        """One endpoint has no attempts series, since it repeats the call counts."""
        registry = CollectorRegistry()
        endpoints = build(URLS[:1], registry=registry)

        pick_urls(endpoints, 3)

        value = registry.get_sample_value(
            "service_endpoint_attempts_total",
            {"service": SERVICE, "endpoint": URLS[0]},
        )
        assert value is None


class TestEjection:
    """Consecutive failures eject an endpoint for a growing, capped time."""

    def test_ejected_after_consecutive_failures(self) -> None:
        """The third failure in a row ejects the endpoint, not the second."""
        endpoints = build()
        first = endpoints.endpoints[0]

        fail(endpoints, first, 2)
        before = endpoints.states()[0].state
        fail(endpoints, first, 1)
        after = endpoints.states()[0]

        assert before == ACTIVE
        assert after.state == EJECTED
        assert after.ejections == 1
        assert after.ejected_for == 10.0

    def test_success_resets_streak(self) -> None:
        """A success between failures starts the count again."""
        endpoints = build()
        first = endpoints.endpoints[0]

        fail(endpoints, first, 2)
        endpoints.record_success(first)
        fail(endpoints, first, 2)

        assert endpoints.states()[0].state == ACTIVE
        assert endpoints.states()[0].consecutive_failures == 2

    def test_readmitted_after_ejection_time(self) -> None:
        """The endpoint returns to the picks when its ejection time has passed."""
        clock = ManualClock()
        endpoints = build(clock=clock)
        first = endpoints.endpoints[0]
        fail(endpoints, first, 3)

        clock.advance(9.9)
        still_ejected = URLS[0] not in pick_urls(endpoints, 3)
        clock.advance(0.1)
        readmitted = URLS[0] in pick_urls(endpoints, 3)

        assert still_ejected
        assert readmitted
        assert endpoints.states()[0].state == ACTIVE
        assert endpoints.states()[0].consecutive_failures == 0

    def test_ejection_time_grows_and_is_capped(self) -> None:
        """Each ejection in a row lasts one base time longer, up to the maximum."""
        clock = ManualClock()
        endpoints = build(clock=clock)
        first = endpoints.endpoints[0]
        durations = []

        for _ in range(6):
            fail(endpoints, first, 3)
            duration = endpoints.states()[0].ejected_for
            durations.append(duration)
            clock.advance(duration)

        assert durations == [10.0, 20.0, 30.0, 40.0, 40.0, 40.0]

    def test_ejection_time_shrinks_while_healthy(self) -> None:
        """Each base time spent active takes one step off the next ejection."""
        clock = ManualClock()
        endpoints = build(clock=clock)
        first = endpoints.endpoints[0]
        for _ in range(3):
            fail(endpoints, first, 3)
            clock.advance(endpoints.states()[0].ejected_for)

        clock.advance(20.0)  # two base times active after the third ejection
        fail(endpoints, first, 3)

        assert endpoints.states()[0].ejected_for == 20.0

    def test_failure_after_ejection_is_ignored(self) -> None:
        """An attempt that ends after its endpoint's ejection changes nothing."""
        clock = ManualClock()
        endpoints = build(clock=clock)
        first = endpoints.endpoints[0]
        fail(endpoints, first, 3)

        fail(endpoints, first, 5)

        assert endpoints.states()[0].ejections == 1
        assert endpoints.states()[0].ejected_for == 10.0

    def test_disabled_never_ejects(self) -> None:
        """With outlier detection off, failures only count."""
        endpoints = build(enabled=False)
        first = endpoints.endpoints[0]

        fail(endpoints, first, 50)

        assert endpoints.states()[0].state == ACTIVE
        assert endpoints.states()[0].consecutive_failures == 50

    def test_ejection_metrics(self) -> None:
        """The ejection counter and state gauge follow ejection and re-admission."""
        registry = CollectorRegistry()
        clock = ManualClock()
        endpoints = build(registry=registry, clock=clock)
        labels = {"service": SERVICE, "endpoint": URLS[0]}
        fail(endpoints, endpoints.endpoints[0], 3)

        ejected_gauge = sample(registry, "service_endpoint_state", **labels)
        clock.advance(10.0)
        endpoints.states()
        readmitted_gauge = sample(registry, "service_endpoint_state", **labels)

        ejections = sample(registry, "service_endpoint_ejections_total", **labels)
        assert ejections == 1.0
        assert ejected_gauge == 1.0
        assert readmitted_gauge == 0.0


class TestMaxEjection:
    """Ejections stop at a share of the endpoints, at least one and never all."""

    @pytest.mark.parametrize(
        ("count", "percent", "expected"),
        [
            (1, 100, 0),
            (2, 10, 1),
            (2, 100, 1),
            (3, 0, 1),
            (4, 50, 2),
            (10, 10, 1),
            (10, 35, 3),
            (5, 100, 4),
        ],
    )
    def test_max_ejected(self, count: int, percent: int, expected: int) -> None:
        """The cap is the percentage rounded down, at least 1, at most all but 1."""
        urls = tuple(f"http://127.0.0.1:{9000 + index}" for index in range(count))
        endpoints = build(urls, max_ejection_percent=percent)

        for endpoint in endpoints.endpoints:
            fail(endpoints, endpoint, 3)

        ejected = [state for state in endpoints.states() if state.state == EJECTED]
        assert endpoints.max_ejected == expected
        assert len(ejected) == expected

    def test_blocked_endpoint_ejected_when_room_frees(self) -> None:
        """A failing endpoint held back by the cap is ejected once another returns."""
        clock = ManualClock()
        endpoints = build(URLS[:2], clock=clock)
        first, second = endpoints.endpoints
        fail(endpoints, first, 3)
        fail(endpoints, second, 3)
        clock.advance(10.0)

        fail(endpoints, second, 1)

        states = [state.state for state in endpoints.states()]
        assert states == [ACTIVE, EJECTED]

    def test_blocked_ejection_logged_once(self, warnings: list[str]) -> None:
        """An ejection the cap prevents logs one warning per failure streak."""
        endpoints = build(URLS[:2])
        first, second = endpoints.endpoints
        fail(endpoints, first, 3)

        fail(endpoints, second, 10)

        skipped = [line for line in warnings if "stays active" in line]
        assert len(skipped) == 1


class TestOutcomes:
    """Which attempt errors count against an endpoint."""

    @pytest.mark.parametrize(
        ("kind", "status"),
        [
            (ServiceConnectionError, None),
            (ServiceTimeoutError, None),
            (ServiceIncompleteBodyError, 200),
            (ServiceServerError, 503),
        ],
    )
    def test_endpoint_failures(
        self, kind: type[ServiceProxyError], status: int | None
    ) -> None:
        """Connection errors, timeouts, cut bodies and 5xx count as failures."""
        assert is_endpoint_failure(error(kind, status))

    @pytest.mark.parametrize(
        ("kind", "status"),
        [
            (ServiceClientError, 404),
            (ServiceClientError, 429),
            (ServiceDecodeError, 200),
            (ServiceDeadlineError, None),
            (ServiceSessionClosedError, None),
        ],
    )
    def test_not_endpoint_failures(
        self, kind: type[ServiceProxyError], status: int | None
    ) -> None:
        """4xx, undecodable bodies, deadlines and a closed session do not count."""
        assert not is_endpoint_failure(error(kind, status))

    def test_client_error_ends_streak(self) -> None:
        """A 4xx is a response, so it resets the failure count like a success."""
        endpoints = build()
        first = endpoints.endpoints[0]
        fail(endpoints, first, 2)

        endpoints.record_error(first, error(ServiceClientError, 404))

        assert endpoints.states()[0].consecutive_failures == 0

    def test_deadline_keeps_streak(self) -> None:
        """A caller's deadline neither adds to nor ends the failure count."""
        endpoints = build()
        first = endpoints.endpoints[0]
        fail(endpoints, first, 2)

        endpoints.record_error(first, error(ServiceDeadlineError))

        assert endpoints.states()[0].consecutive_failures == 2


class TestAbsorbsFailure:
    """Which endpoint failures the service's circuit breaker ignores."""

    def test_absorbed_while_another_endpoint_succeeds(self) -> None:
        """A failure is the endpoint's own when another one just succeeded."""
        endpoints = build(URLS[:2])
        first, second = endpoints.endpoints
        endpoints.record_success(second)
        endpoints.record_failure(first)

        assert endpoints.absorbs_failure(first)

    def test_counted_when_every_endpoint_fails(self) -> None:
        """A failure counts for the service when no other endpoint has succeeded."""
        endpoints = build(URLS[:2])
        first, second = endpoints.endpoints
        endpoints.record_failure(second)
        endpoints.record_failure(first)

        assert not endpoints.absorbs_failure(first)
        assert not endpoints.absorbs_failure(second)

    def test_counted_before_any_evidence(self) -> None:
        """Before any endpoint has succeeded, failures count for the service."""
        endpoints = build(URLS[:2])
        first = endpoints.endpoints[0]
        endpoints.record_failure(first)

        assert not endpoints.absorbs_failure(first)

    def test_absorbed_once_ejected(self) -> None:
        """A failure of an ejected endpoint is always its own."""
        endpoints = build(URLS[:2])
        first = endpoints.endpoints[0]
        fail(endpoints, first, 3)

        assert endpoints.absorbs_failure(first)

    def test_last_active_endpoint_counted(self) -> None:
        """With the other endpoint ejected, a failure counts for the service."""
        endpoints = build(URLS[:2])
        first, second = endpoints.endpoints
        endpoints.record_success(first)
        fail(endpoints, first, 3)
        endpoints.record_success(second)

        endpoints.record_failure(second)

        assert not endpoints.absorbs_failure(second)

    def test_readmitted_endpoint_is_no_evidence(self) -> None:
        """A re-admitted endpoint must succeed again before it absorbs failures."""
        clock = ManualClock()
        endpoints = build(URLS[:2], clock=clock)
        first, second = endpoints.endpoints
        endpoints.record_success(first)
        fail(endpoints, first, 3)
        clock.advance(10.0)
        endpoints.states()

        endpoints.record_failure(second)

        assert not endpoints.absorbs_failure(second)


class TestStates:
    """endpoint_states() values."""

    def test_states_in_settings_order(self) -> None:
        """Every endpoint is listed once, in order, active at start."""
        endpoints = build()

        states = endpoints.states()

        assert states == [EndpointState(url=url, state=ACTIVE) for url in URLS]

    def test_state_is_frozen(self) -> None:
        """EndpointState is an immutable value."""
        state = build().states()[0]

        with pytest.raises(AttributeError):
            state.state = EJECTED  # type: ignore[misc]

    def test_empty_url_list_rejected(self) -> None:
        """An endpoint set needs at least one URL."""
        with pytest.raises(ValueError, match="at least one URL"):
            build(())


class TestCooldown:
    """A Retry-After holds back the endpoint that sent it."""

    def test_cooling_endpoint_avoided(self) -> None:
        """Picks skip an endpoint in its cool-down while another is free."""
        clock = ManualClock()
        endpoints = build(URLS[:2], clock=clock)
        first = endpoints.endpoints[0]

        wait = endpoints.cool_down(first, 5.0)
        during = pick_urls(endpoints, 4)
        clock.advance(5.0)
        after = pick_urls(endpoints, 4)

        assert wait == 0.0
        assert during == [URLS[1]] * 4
        assert URLS[0] in after

    def test_service_waits_when_all_cool(self) -> None:
        """With every endpoint cooling down, the minimum of their waits is returned."""
        clock = ManualClock()
        endpoints = build(URLS[:2], clock=clock)
        first, second = endpoints.endpoints
        endpoints.cool_down(first, 5.0)
        clock.advance(1.0)

        wait = endpoints.cool_down(second, 10.0)

        assert wait == 4.0

    def test_all_cooling_still_picks(self) -> None:
        """With every endpoint cooling down, a pick still returns the least loaded."""
        endpoints = build(URLS[:2])
        for endpoint in endpoints.endpoints:
            endpoints.cool_down(endpoint, 5.0)

        picked = pick_urls(endpoints, 2)

        assert picked == list(URLS[:2])

    def test_ejected_endpoint_ignored_in_wait(self) -> None:
        """An ejected endpoint's cool-down does not decide the service's wait."""
        endpoints = build(URLS[:2])
        first, second = endpoints.endpoints
        fail(endpoints, first, 3)

        wait = endpoints.cool_down(second, 5.0)

        assert wait == 5.0
