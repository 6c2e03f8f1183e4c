"""BaseServiceProxy against a scripted upstream over loopback HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
import tenacity
from loguru import logger
from prometheus_client import CollectorRegistry

from app.correlation import request_id_scope
from app.metrics import ProxyMetrics
from app.proxies import (
    ServiceClientError,
    ServiceConnectionError,
    ServiceDecodeError,
    ServiceIncompleteBodyError,
    ServiceProxyError,
    ServiceRedirectError,
    ServiceServerError,
    ServiceSessionClosedError,
    ServiceTimeoutError,
    UserServiceProxy,
)
from app.proxies.wire import ERROR_TEXT_LIMIT
from app.testing import Reply, ScriptedUpstream, closed_port_url
from tests.conftest import ProxyFactory
from tests.helpers import USER_JSON, sample, service_settings

SERVICE = "user-service"
STATS_JSON: dict[str, Any] = {
    "userId": "7",
    "interviewsCreated": 1,
    "candidatesInvited": 2,
    "quotaLimit": 10,
    "quotaUsed": 3,
}


def _collect(level: str, pick: Callable[[Any], Any]) -> Iterator[list[Any]]:
    """Collect ``pick(record)`` of every log record of exactly ``level``."""
    seen: list[Any] = []
    sink_id = logger.add(
        lambda message: seen.append(pick(message.record)),
        level=level,
        filter=lambda record: record["level"].name == level,
    )
    yield seen
    logger.remove(sink_id)


@pytest.fixture
def warnings_seen() -> Iterator[list[dict[str, Any]]]:
    """Collect the extra fields of every WARNING log record."""
    yield from _collect("WARNING", lambda record: dict(record["extra"]))


class TestRetry:
    """Which failures are retried, how often and with which waits."""

    async def test_get_retries_until_success(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A GET that fails twice with 503 and then succeeds returns the body."""
        upstream.script(
            Reply.json({"message": "busy"}, 503),
            Reply.json({"message": "busy"}, 503),
            Reply.json({"ok": True}),
        )
        proxy = make_proxy(upstream.url)

        result = await proxy.get("/ping")

        assert result == {"ok": True}
        assert upstream.hits == 3

    async def test_404_is_not_retried(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A 404 reaches the upstream once and raises ServiceClientError."""
        upstream.script(Reply.json({"message": "user not found"}, 404))
        proxy = make_proxy(upstream.url)

        with pytest.raises(ServiceClientError) as caught:
            await proxy.get("/users/1")

        assert upstream.hits == 1
        assert caught.value.status_code == 404
        assert caught.value.details == {"message": "user not found"}
        assert caught.value.service_name == SERVICE

    @pytest.mark.parametrize("status", [400, 401, 403, 409, 422, 429])
    async def test_no_4xx_is_retried(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory, status: int
    ) -> None:
        """Every 4xx status is sent once."""
        upstream.script(Reply.json({"message": "no"}, status))
        proxy = make_proxy(upstream.url)

        with pytest.raises(ServiceClientError):
            await proxy.get("/x")

        assert upstream.hits == 1

    async def test_503_retries_used_up(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """An upstream that always returns 503 is hit 1 + retries times."""
        upstream.script(Reply.json({"message": "down for maintenance"}, 503))
        proxy = make_proxy(upstream.url, retries=3)

        with pytest.raises(ServiceServerError) as caught:
            await proxy.get("/users/1")

        assert upstream.hits == 4
        assert caught.value.status_code == 503
        assert caught.value.details == {"message": "down for maintenance"}
        assert caught.value.attempts == 4
        assert not isinstance(caught.value, tenacity.RetryError)
        assert (
            sample(registry, "service_retries_total", service=SERVICE, method="GET")
            == 3
        )

    async def test_waits_grow_and_none_after_last(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        warnings_seen: list[dict[str, Any]],
    ) -> None:
        """Waits double from backoff_initial up to backoff_max, none after the last."""
        upstream.script(Reply.json({"message": "down"}, 503))
        proxy = make_proxy(
            upstream.url, retries=4, backoff_initial=0.01, backoff_max=0.03
        )

        with pytest.raises(ServiceServerError):
            await proxy.get("/users/1")

        waits = [round(record["wait"], 3) for record in warnings_seen]
        assert waits == [0.01, 0.02, 0.03, 0.03]
        assert [record["attempt"] for record in warnings_seen] == [1, 2, 3, 4]

    async def test_timeout_is_retried_then_raised(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """An upstream that never responds gives ServiceTimeoutError after retries."""
        upstream.script(Reply(hang=True))
        proxy = make_proxy(upstream.url, timeout=0.2, retries=2)

        with pytest.raises(ServiceTimeoutError) as caught:
            await proxy.get("/users/1")

        assert upstream.hits == 3
        assert caught.value.status_code is None
        assert caught.value.is_timeout
        assert caught.value.is_network_error
        assert isinstance(caught.value, TimeoutError)
        assert isinstance(caught.value.__cause__, TimeoutError)

    async def test_refused_connection_is_retried_then_raised(
        self, make_proxy: ProxyFactory, registry: CollectorRegistry
    ) -> None:
        """A closed port gives ServiceConnectionError after every retry."""
        proxy = make_proxy(closed_port_url(), retries=2)

        with pytest.raises(ServiceConnectionError) as caught:
            await proxy.get("/users/1")

        assert caught.value.status_code is None
        assert caught.value.is_network_error
        assert not caught.value.is_timeout
        assert not caught.value.request_sent
        assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorError)
        assert (
            sample(registry, "service_retries_total", service=SERVICE, method="GET")
            == 2
        )

    async def test_post_is_not_retried_on_503(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A POST without an Idempotency-Key is sent once, whatever the failure."""
        upstream.script(Reply.json({"message": "down"}, 503))
        proxy = make_proxy(upstream.url)

        with pytest.raises(ServiceServerError):
            await proxy.post("/things", {"name": "a"})

        assert upstream.hits == 1

    async def test_post_is_not_retried_on_timeout(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A POST that may have reached the upstream is not repeated after a timeout."""
        upstream.script(Reply(hang=True))
        proxy = make_proxy(upstream.url, timeout=0.2)

        with pytest.raises(ServiceTimeoutError):
            await proxy.post("/things", {"name": "a"})

        assert upstream.hits == 1

    async def test_post_with_idempotency_key_is_retried(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A POST carrying an Idempotency-Key is retried with the same key."""
        upstream.script(Reply.json({"message": "down"}, 503), Reply.json({"id": "1"}))
        proxy = make_proxy(upstream.url)

        result = await proxy.post(
            "/things", {"name": "a"}, headers={"Idempotency-Key": "k-1"}
        )

        assert result == {"id": "1"}
        keys = [request.headers["idempotency-key"] for request in upstream.requests]
        assert keys == ["k-1", "k-1"]

    async def test_post_is_retried_when_connect_fails(
        self, make_proxy: ProxyFactory, registry: CollectorRegistry
    ) -> None:
        """A POST whose connection was refused never left, so it is retried."""
        proxy = make_proxy(closed_port_url(), retries=2)

        with pytest.raises(ServiceConnectionError):
            await proxy.post("/things", {"name": "a"})

        retries = sample(
            registry, "service_retries_total", service=SERVICE, method="POST"
        )
        assert retries == 2

    async def test_retries_option_overrides_settings(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """The per-request retries option replaces the service's setting."""
        upstream.script(Reply.json({"message": "down"}, 503))
        proxy = make_proxy(upstream.url, retries=3)

        with pytest.raises(ServiceServerError):
            await proxy.get("/x", retries=1)

        assert upstream.hits == 2

    async def test_zero_retries_sends_once(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """retries=0 turns retrying off."""
        upstream.script(Reply.json({"message": "down"}, 503))
        proxy = make_proxy(upstream.url, retries=0)

        with pytest.raises(ServiceServerError):
            await proxy.get("/x")

        assert upstream.hits == 1

    async def test_timeout_option_overrides_settings(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """The per-request timeout option replaces the service's timeout."""
        upstream.script(Reply(delay_headers=0.5, body={"ok": True}))
        proxy = make_proxy(upstream.url, timeout=5.0, retries=0)

        with pytest.raises(ServiceTimeoutError):
            await proxy.get("/x", timeout=0.1)

    async def test_negative_retries_rejected(self, make_proxy: ProxyFactory) -> None:
        """A negative retries option is a programming error."""
        proxy = make_proxy(closed_port_url())

        with pytest.raises(ValueError, match="retries"):
            await proxy.get("/x", retries=-1)

    async def test_headers_option_is_sent(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """Extra headers reach the upstream."""
        proxy = make_proxy(upstream.url)

        await proxy.get("/x", headers={"X-Custom": "value"})

        assert upstream.requests[0].headers["x-custom"] == "value"


class TestSlowAndBrokenBodies:
    """Bodies that arrive slowly, cut short, or not as JSON."""

    async def test_slow_body_times_out_each_attempt(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """A body that trickles in is cut at the attempt timeout, not read for long."""
        upstream.script(Reply(body="x" * 200, slow_body_interval=0.1))
        proxy = make_proxy(upstream.url, timeout=0.4, retries=1)
        started = time.perf_counter()

        with pytest.raises(ServiceTimeoutError):
            await proxy.get("/slow")

        elapsed = time.perf_counter() - started
        assert upstream.hits == 2
        # Two attempts of 0.4 s each, far from the 20 s the whole body takes.
        assert elapsed < 5.0
        errors = sample(
            registry,
            "service_calls_total",
            service=SERVICE,
            method="GET",
            operation="get",
            status="error",
        )
        successes = sample(
            registry,
            "service_calls_total",
            service=SERVICE,
            method="GET",
            operation="get",
            status="success",
        )
        assert errors == 1
        assert successes == 0

    async def test_truncated_body_is_retried_then_raised(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A body shorter than its Content-Length never becomes a partial result."""
        upstream.script(Reply(body={"id": "1", "name": "x" * 100}, truncate_body_to=20))
        proxy = make_proxy(upstream.url, retries=2)

        with pytest.raises(ServiceIncompleteBodyError) as caught:
            await proxy.get("/users/1")

        assert upstream.hits == 3
        assert "incomplete" in str(caught.value.details)
        assert caught.value.is_network_error

    async def test_truncated_body_then_success(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A GET whose first body was cut short succeeds on the retry."""
        upstream.script(
            Reply(body={"id": "1", "name": "x" * 100}, truncate_body_to=20),
            Reply.json({"id": "1"}),
        )
        proxy = make_proxy(upstream.url)

        assert await proxy.get("/users/1") == {"id": "1"}

    async def test_html_502_gives_bounded_text_details(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A 502 HTML page becomes a short text excerpt and is retried like any 5xx."""
        page = "<html><body>" + "bad gateway " * 1000 + "</body></html>"
        upstream.script(Reply.text(page, 502, content_type="text/html"))
        proxy = make_proxy(upstream.url, retries=1)

        with pytest.raises(ServiceServerError) as caught:
            await proxy.get("/users/1")

        assert caught.value.status_code == 502
        assert isinstance(caught.value.details, str)
        assert len(caught.value.details) <= ERROR_TEXT_LIMIT + 1
        assert caught.value.details.startswith("<html>")
        assert upstream.hits == 2

    @pytest.mark.parametrize("content_type", [None, "application/json"])
    async def test_204_returns_none(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        content_type: str | None,
    ) -> None:
        """A 204 returns None, with or without a JSON content type."""
        upstream.script(Reply(status=204, content_type=content_type))
        proxy = make_proxy(upstream.url)

        assert await proxy.delete("/things/1") is None

    async def test_empty_200_returns_none(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """An empty 200 body decodes to None."""
        upstream.script(Reply(status=200, body=b""))
        proxy = make_proxy(upstream.url)

        assert await proxy.get("/x") is None

    async def test_non_json_200_is_a_decode_error(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A 200 whose body is not JSON raises ServiceDecodeError once."""
        upstream.script(Reply.text("not json", content_type="application/json"))
        proxy = make_proxy(upstream.url)

        with pytest.raises(ServiceDecodeError) as caught:
            await proxy.get("/x")

        assert caught.value.status_code == 200
        assert upstream.hits == 1

    async def test_schema_mismatch_is_a_decode_error(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A body that does not fit the model names the fields, not their values."""
        upstream.script(Reply.json({"id": "1", "email": "secret@example.com"}))
        proxy = make_proxy(upstream.url)

        with pytest.raises(ServiceDecodeError) as caught:
            await proxy.get_user("1")

        details = caught.value.details
        assert "firstName" in " ".join(details["errors"])
        assert "secret@example.com" not in str(details)

    async def test_body_over_limit_is_rejected(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A body larger than max_body_bytes raises ServiceDecodeError."""
        upstream.script(Reply.json({"data": "x" * 5000}))
        proxy = make_proxy(upstream.url, max_body_bytes=1000)

        with pytest.raises(ServiceDecodeError) as caught:
            await proxy.get("/big")

        assert "exceeds the limit" in caught.value.details

    async def test_chunked_body_over_limit_is_rejected(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A chunked body with no Content-Length is cut at the limit too."""
        upstream.script(Reply(body={"data": "x" * 5000}, chunked=True))
        proxy = make_proxy(upstream.url, max_body_bytes=1000)

        with pytest.raises(ServiceDecodeError) as caught:
            await proxy.get("/big")

        assert "exceeds the limit" in caught.value.details

    async def test_redirect_is_not_followed(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A 302 raises ServiceRedirectError instead of following Location."""
        upstream.script(Reply(status=302, headers={"Location": "http://127.0.0.1:9/"}))
        proxy = make_proxy(upstream.url)

        with pytest.raises(ServiceRedirectError) as caught:
            await proxy.get("/x")

        assert caught.value.status_code == 302
        assert upstream.hits == 1

    async def test_keep_alive_lie_does_not_break_calls(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """An upstream that closes after each keep-alive response serves every GET."""
        upstream.script(Reply(body={"ok": True}, close_after=True))
        proxy = make_proxy(upstream.url, retries=0)

        results = [await proxy.get("/x") for _ in range(5)]

        assert results == [{"ok": True}] * 5


class TestUrls:
    """Base URLs with path prefixes, and path parameters."""

    @pytest.mark.parametrize("suffix", ["/user-api", "/user-api/"])
    async def test_prefix_is_kept(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory, suffix: str
    ) -> None:
        """A base URL path prefix stays in front of the request path."""
        upstream.script(Reply.json({"ok": True}))
        proxy = make_proxy(upstream.url + suffix)

        await proxy.get("/users/42")

        assert upstream.requests[0].path == "/user-api/users/42"

    @pytest.mark.parametrize(
        ("user_id", "expected"),
        [
            ("a/b", "/users/a%2Fb/stats"),
            ("../admin", "/users/..%2Fadmin/stats"),
            ("?x=1", "/users/%3Fx%3D1/stats"),
            ("#frag", "/users/%23frag/stats"),
            ("\r\nHost: x", "/users/%0D%0AHost%3A%20x/stats"),
            ("jos\u00e9", "/users/jos%C3%A9/stats"),
        ],
    )
    async def test_path_parameter_stays_one_segment(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        user_id: str,
        expected: str,
    ) -> None:
        """Every path parameter is percent-encoded into a single segment."""
        upstream.script(Reply.json({"message": "no"}, 404))
        proxy = make_proxy(upstream.url)

        with pytest.raises(ServiceClientError):
            await proxy.get_user_stats(user_id)

        assert upstream.requests[0].path == expected

    @pytest.mark.parametrize("user_id", ["", ".", "..", "x" * 513])
    async def test_invalid_path_parameter_is_rejected(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory, user_id: str
    ) -> None:
        """Empty, dot and overlong ids raise ValueError before any request."""
        proxy = make_proxy(upstream.url)

        with pytest.raises(ValueError, match="path parameter"):
            await proxy.get_user(user_id)

        assert upstream.hits == 0

    @pytest.mark.parametrize("path", ["users/1", "/users?x=1", "/users#f"])
    async def test_invalid_path_is_rejected(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory, path: str
    ) -> None:
        """A path without a leading slash, or with a query, raises ValueError."""
        proxy = make_proxy(upstream.url)

        with pytest.raises(ValueError, match="path must start"):
            await proxy.get(path)


class TestMetrics:
    """What a call records in the registry."""

    async def test_retried_call_is_observed_once(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """A call that needed two attempts is one success and one observation."""
        upstream.script(Reply.json({"message": "down"}, 503), Reply.json({"ok": True}))
        proxy = make_proxy(upstream.url)

        await proxy.get("/x")

        labels = {"service": SERVICE, "method": "GET", "operation": "get"}
        assert sample(registry, "service_calls_total", **labels, status="success") == 1
        assert sample(registry, "service_calls_total", **labels, status="error") == 0
        count = sample(registry, "service_call_duration_milliseconds_count", **labels)
        assert count == 1
        retries = sample(
            registry, "service_retries_total", service=SERVICE, method="GET"
        )
        assert retries == 1

    async def test_failed_call_counts_error(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """A failed call is one error and one observation."""
        upstream.script(Reply.json({"message": "no"}, 404))
        proxy = make_proxy(upstream.url)

        with pytest.raises(ServiceClientError):
            await proxy.get("/x")

        labels = {"service": SERVICE, "method": "GET", "operation": "get"}
        assert sample(registry, "service_calls_total", **labels, status="error") == 1
        count = sample(registry, "service_call_duration_milliseconds_count", **labels)
        assert count == 1

    async def test_ids_and_searches_add_no_series(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        registry: CollectorRegistry,
    ) -> None:
        """10,000 distinct ids and search strings leave the label sets unchanged."""
        upstream.script(Reply.json({"message": "no"}, 404))
        proxy = make_proxy(upstream.url, retries=0)
        values: set[str] = set()

        for index in range(10_000):
            user_id = f"user-{index}-{index * 7919 % 10007}"
            values.add(user_id)
            call = (
                proxy.get_user(user_id)
                if index % 2
                else proxy.list_users(search=f"who{index}@example.com")
            )
            with pytest.raises(ServiceClientError):
                await call

        label_sets = {
            tuple(sorted(metric_sample.labels.items()))
            for family in registry.collect()
            for metric_sample in family.samples
        }
        label_values = {value for labels in label_sets for _, value in labels}
        assert values.isdisjoint(label_values)
        assert not any("@" in value for value in label_values)
        services = {dict(labels).get("service") for labels in label_sets}
        assert services == {SERVICE}
        methods = {dict(labels).get("method") for labels in label_sets} - {None}
        assert methods == {"GET"}
        operations = {dict(labels).get("operation") for labels in label_sets} - {None}
        assert operations == {"get_user", "list_users"}
        label_names = {name for labels in label_sets for name, _ in labels}
        allowed = {
            "service",
            "method",
            "operation",
            "status",
            "reason",
            "result",
            "le",
            "endpoint",
        }
        assert label_names <= allowed
        endpoints = {dict(labels).get("endpoint") for labels in label_sets} - {None}
        assert endpoints == {upstream.url}


@pytest.fixture
def debug_lines() -> Iterator[list[str]]:
    """Collect the message of every DEBUG log record."""
    yield from _collect("DEBUG", lambda record: record["message"])


class TestSuccessLog:
    """The DEBUG line of a successful call, which log_successes turns on."""

    @pytest.mark.parametrize(
        ("overrides", "expected"),
        [({"log_successes": True}, ["GET /ping -> 200"]), ({}, [])],
        ids=["on", "off by default"],
    )
    async def test_success_line(
        self,
        upstream: ScriptedUpstream,
        make_proxy: ProxyFactory,
        debug_lines: list[str],
        overrides: dict[str, Any],
        expected: list[str],
    ) -> None:
        """With log_successes a call logs its method, path and status; else nothing."""
        upstream.script(Reply.json({"ok": True}))
        proxy = make_proxy(upstream.url, **overrides)

        await proxy.get("/ping")

        assert [line.partition(" in ")[0] for line in debug_lines] == expected


class TestCallerHeaders:
    """Headers that a caller passes replace the proxy's own, in any letter case."""

    async def test_request_id_in_lower_case_wins(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A caller's x-request-id is sent instead of the context's id."""
        upstream.script(Reply.json({"ok": True}))
        proxy = make_proxy(upstream.url)

        with request_id_scope("from-context"):
            await proxy.get("/ping", headers={"x-request-id": "mine"})

        assert upstream.requests[0].headers["x-request-id"] == "mine"

    async def test_accept_in_upper_case_wins(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A caller's ACCEPT is sent instead of application/json."""
        upstream.script(Reply.json({"ok": True}))
        proxy = make_proxy(upstream.url)

        await proxy.get("/ping", headers={"ACCEPT": "application/vnd.x+json"})

        assert upstream.requests[0].headers["accept"] == "application/vnd.x+json"


class TestRepeatedReads:
    """A typed read without options is built once per id and sent afresh each time."""

    async def test_options_stay_with_their_call(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """A read with headers and a timeout leaves none of them to the next read."""
        upstream.script(Reply.json(USER_JSON))
        proxy = make_proxy(upstream.url, timeout=2.0)

        await proxy.get_user("1")
        await proxy.get_user("1", headers={"X-Tenant": "a"}, timeout=0.5)
        await proxy.get_user("1")

        sent = [
            (request.headers.get("x-tenant"), request.headers["x-request-deadline-ms"])
            for request in upstream.requests
        ]
        assert sent == [(None, "2000"), ("a", "500"), (None, "2000")]

    async def test_encoded_id_again(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """An id that needs encoding goes out encoded on every read."""
        upstream.script(Reply.json({**USER_JSON, "id": "a/b c"}))
        proxy = make_proxy(upstream.url)

        for _ in range(2):
            user = await proxy.get_user("a/b c")
            assert user.id == "a/b c"

        assert [r.path for r in upstream.requests] == ["/users/a%2Fb%20c"] * 2

    async def test_equal_ids_keep_their_text(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """Ids equal in Python but written differently go out as written."""
        upstream.script(Reply.json(USER_JSON))
        proxy = make_proxy(upstream.url)
        ids: list[Any] = [True, 1, 1.0, "1", True]

        for user_id in ids:
            await proxy.get_user(user_id)

        paths = [r.path for r in upstream.requests]
        expected = ["/users/True", "/users/1", "/users/1.0", "/users/1", "/users/True"]
        assert paths == expected

    async def test_id_text_is_read_once(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """An id whose text is a str subclass with other text is read as that text."""

        class Inner(str):
            def __str__(self) -> str:
                return "inner"

        class Outer:
            def __str__(self) -> str:
                return Inner("outer")

        upstream.script(Reply.json(USER_JSON))
        proxy = make_proxy(upstream.url)
        user_id: Any = Outer()

        await proxy.get_user(user_id)
        await proxy.get_user("inner")

        assert [r.path for r in upstream.requests] == ["/users/outer", "/users/inner"]

    async def test_rejected_id_is_rejected_again(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """An id that cannot be a path segment raises each time and sends nothing."""
        proxy = make_proxy(upstream.url)

        for _ in range(2):
            with pytest.raises(ValueError, match="non-empty id"):
                await proxy.get_user("..")

        assert upstream.hits == 0

    async def test_one_id_read_by_two_operations(
        self, upstream: ScriptedUpstream, make_proxy: ProxyFactory
    ) -> None:
        """Two reads of one id keep their own paths and models."""
        upstream.route("/users/7", Reply.json({**USER_JSON, "id": "7"}))
        upstream.route("/users/7/stats", Reply.json(STATS_JSON))
        proxy = make_proxy(upstream.url)

        for _ in range(2):
            user = await proxy.get_user("7")
            stats = await proxy.get_user_stats("7")
            assert (type(user).__name__, user.id) == ("User", "7")
            assert (type(stats).__name__, stats.quota_used) == ("UserStats", 3)

        assert [r.path for r in upstream.requests] == [
            "/users/7",
            "/users/7/stats",
        ] * 2


class TestSessionLifecycle:
    """Calls on a closed session."""

    async def test_call_after_close_raises_proxy_error(
        self, upstream: ScriptedUpstream, metrics: ProxyMetrics
    ) -> None:
        """A call on a closed session raises ServiceSessionClosedError."""
        session = aiohttp.ClientSession()
        await session.close()
        proxy = UserServiceProxy(session, service_settings(upstream.url), metrics)

        with pytest.raises(ServiceSessionClosedError) as caught:
            await proxy.get_user("1")

        assert isinstance(caught.value, ServiceProxyError)
        assert upstream.hits == 0


def test_repr_names_service_and_url(
    session: aiohttp.ClientSession, metrics: ProxyMetrics
) -> None:
    """The repr shows the service and its base URL."""
    proxy = UserServiceProxy(session, service_settings("http://127.0.0.1:1"), metrics)

    expected = "UserServiceProxy(name='user-service', url='http://127.0.0.1:1')"
    assert repr(proxy) == expected
