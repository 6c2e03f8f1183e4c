"""SDK set-up from OTEL_* variables, in-process and through `python -m app serve`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from app.telemetry import DEFAULT_SERVICE_NAME, install_tracer_provider, span_exporters
from app.testing import Reply, ScriptedUpstream
from tests.gateway.test_request_id import USER
from tests.helpers import Sandbox, free_port, reset_trace_globals
from tests.test_cli import STOP_SECONDS, child_env, command, running, wait_until_up

TRACE_ID = "5b8efff798038103d269b633813fc60c"
PARENT_ID = "eee19b7ec3c1b174"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.fixture
def otel_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Remove every OTEL_ variable for the test; the test sets what it needs."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def global_provider() -> Iterator[None]:
    """Put the API's default tracer provider back after the test, shut down."""
    reset_trace_globals()
    try:
        yield
    finally:
        provider = trace.get_tracer_provider()
        if isinstance(provider, TracerProvider):
            provider.shutdown()
        reset_trace_globals()


class TestSpanExporters:
    """OTEL_TRACES_EXPORTER picks the exporters."""

    @pytest.mark.parametrize("value", ["", "none", " none "])
    def test_unset_or_none_gives_none(
        self, otel_env: pytest.MonkeyPatch, value: str
    ) -> None:
        """No exporter is built unless one is named."""
        otel_env.setenv("OTEL_TRACES_EXPORTER", value)

        assert span_exporters() == []

    def test_console(self, otel_env: pytest.MonkeyPatch) -> None:
        """console builds the SDK's console exporter."""
        otel_env.setenv("OTEL_TRACES_EXPORTER", "console")

        (exporter,) = span_exporters()

        assert isinstance(exporter, ConsoleSpanExporter)

    def test_otlp_defaults_to_loopback(self, otel_env: pytest.MonkeyPatch) -> None:
        """Without an endpoint variable, OTLP sends to 127.0.0.1, not localhost."""
        otel_env.setenv("OTEL_TRACES_EXPORTER", "otlp")

        (exporter,) = span_exporters()

        assert isinstance(exporter, OTLPSpanExporter)
        # The exporter keeps its endpoint in a private attribute.
        assert exporter._endpoint == "http://127.0.0.1:4318/v1/traces"

    def test_otlp_endpoint_variable_wins(self, otel_env: pytest.MonkeyPatch) -> None:
        """OTEL_EXPORTER_OTLP_ENDPOINT replaces the loopback default."""
        otel_env.setenv("OTEL_TRACES_EXPORTER", "otlp")
        otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")

        (exporter,) = span_exporters()

        assert isinstance(exporter, OTLPSpanExporter)
        assert exporter._endpoint == "http://127.0.0.1:9/v1/traces"

    def test_missing_otlp_package_is_skipped(
        self, otel_env: pytest.MonkeyPatch
    ) -> None:
        """OTLP over gRPC, whose package is not installed, is left out."""
        otel_env.setenv("OTEL_TRACES_EXPORTER", "otlp,console")
        otel_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")

        exporters = span_exporters()

        assert [type(exporter) for exporter in exporters] == [ConsoleSpanExporter]

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("OTEL_TRACES_EXPORTER", "zipkin"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ],
    )
    def test_unknown_name_is_rejected(
        self, otel_env: pytest.MonkeyPatch, name: str, value: str
    ) -> None:
        """An exporter or protocol this package cannot build raises ValueError."""
        otel_env.setenv("OTEL_TRACES_EXPORTER", "otlp")
        otel_env.setenv(name, value)

        with pytest.raises(ValueError, match=name):
            span_exporters()


@pytest.mark.usefixtures("global_provider")
class TestInstallTracerProvider:
    """install_tracer_provider sets the global provider only when asked."""

    def test_console_installs_sdk(self, otel_env: pytest.MonkeyPatch) -> None:
        """console installs an SDK provider named after the gateway."""
        otel_env.setenv("OTEL_TRACES_EXPORTER", "console")

        provider = install_tracer_provider()

        assert provider is not None
        assert trace.get_tracer_provider() is provider
        assert provider.resource.attributes["service.name"] == DEFAULT_SERVICE_NAME

    def test_service_name_variable_is_kept(self, otel_env: pytest.MonkeyPatch) -> None:
        """OTEL_SERVICE_NAME names the service instead of the default."""
        otel_env.setenv("OTEL_TRACES_EXPORTER", "console")
        otel_env.setenv("OTEL_SERVICE_NAME", "edge-gateway")

        provider = install_tracer_provider()

        assert provider is not None
        assert provider.resource.attributes["service.name"] == "edge-gateway"

    @pytest.mark.parametrize(
        "variables",
        [
            {},
            {"OTEL_TRACES_EXPORTER": "none"},
            {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"},
        ],
    )
    def test_api_default_stays(
        self, otel_env: pytest.MonkeyPatch, variables: dict[str, str]
    ) -> None:
        """Without an exporter, or with the SDK disabled, nothing is installed."""
        for name, value in variables.items():
            otel_env.setenv(name, value)

        assert install_tracer_provider() is None
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def console_spans(stdout: str) -> list[dict[str, Any]]:
    """Parse the JSON objects that the console exporter wrote one after another."""
    decoder = json.JSONDecoder()
    spans: list[dict[str, Any]] = []
    position = 0
    text = stdout.strip()
    while position < len(text):
        span, end = decoder.raw_decode(text, position)
        spans.append(span)
        position = end
        while position < len(text) and text[position].isspace():
            position += 1
    return spans


def gateway_env(
    upstream: ScriptedUpstream, sandbox: Sandbox, port: int
) -> dict[str, str]:
    """Point user-service at ``upstream`` and interview-service at the sandbox."""
    env = {
        name: value
        for name, value in child_env().items()
        if not name.startswith("OTEL_")
    }
    env.update(
        USER_SERVICE_URL=upstream.url,
        USER_SERVICE_CACHE_TTL="{}",
        INTERVIEW_SERVICE_URL=sandbox.interview_url,
        GATEWAY_PORT=str(port),
        LOG_FORMAT="json",
        LOG_LEVEL="DEBUG",
    )
    return env


async def serve_one_request(
    env: dict[str, str], port: int, headers: dict[str, str]
) -> tuple[int, str, str]:
    """Run `serve`, send one dashboard request and stop it; return its output."""
    with running(command("serve"), env) as process:
        url = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(wait_until_up, f"{url}/health/live", process)
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"{url}/api/dashboard/1", headers=headers) as response,
        ):
            status = response.status
        process.send_signal(signal.SIGTERM)
        # The upstreams run on this loop, which must keep serving while the
        # gateway exports its last spans on the way out.
        stdout, stderr = await asyncio.to_thread(
            process.communicate, None, STOP_SECONDS
        )
    return status, stdout, stderr


class TestServeProcess:
    """`python -m app serve` as a separate process, over loopback."""

    async def test_console_exporter_traces_the_call(
        self, upstream: ScriptedUpstream, sandbox: Sandbox
    ) -> None:
        """The upstream's parent span is the CLIENT span that the gateway exported."""
        upstream.script(Reply.json(USER))
        port = free_port()
        env = gateway_env(upstream, sandbox, port)
        env["OTEL_TRACES_EXPORTER"] = "console"
        headers = {"traceparent": TRACEPARENT, "X-Request-Id": "rid-serve-1"}

        status, stdout, stderr = await serve_one_request(env, port, headers)

        spans = console_spans(stdout)
        client_ids = {
            span["context"]["span_id"][2:]
            for span in spans
            if span["kind"] == "SpanKind.CLIENT"
        }
        sent = upstream.requests[0].headers
        _, trace_id, parent_id, _ = sent["traceparent"].split("-")
        assert status == 200
        assert trace_id == TRACE_ID
        assert parent_id != PARENT_ID
        assert parent_id in client_ids
        assert sent["x-request-id"] == "rid-serve-1"
        logged = [
            json.loads(line) for line in stderr.splitlines() if "trace_id" in line
        ]
        assert any(line.get("request_id") == "rid-serve-1" for line in logged)
        assert {line["trace_id"] for line in logged} == {TRACE_ID}

    async def test_without_sdk_traceparent_passes_unchanged(
        self, upstream: ScriptedUpstream, sandbox: Sandbox
    ) -> None:
        """With no exporter set, the upstream gets the caller's traceparent as is."""
        upstream.script(Reply.json(USER))
        port = free_port()
        env = gateway_env(upstream, sandbox, port)
        headers = {"traceparent": TRACEPARENT, "X-Request-Id": "rid-serve-2"}

        status, stdout, _ = await serve_one_request(env, port, headers)

        sent = upstream.requests[0].headers
        assert status == 200
        assert sent["traceparent"] == TRACEPARENT
        assert sent["x-request-id"] == "rid-serve-2"
        assert stdout == ""

    async def test_otlp_exporter_posts_spans(
        self, upstream: ScriptedUpstream, sandbox: Sandbox
    ) -> None:
        """OTLP over HTTP posts protobuf spans to the configured endpoint."""
        async with ScriptedUpstream() as collector:
            upstream.script(Reply.json(USER))
            port = free_port()
            env = gateway_env(upstream, sandbox, port)
            env["OTEL_TRACES_EXPORTER"] = "otlp"
            env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"{collector.url}/v1/traces"
            env["NO_PROXY"] = "127.0.0.1"

            status, _, _ = await serve_one_request(
                env, port, {"traceparent": TRACEPARENT}
            )

            exports = [r for r in collector.requests if r.route_path == "/v1/traces"]
        assert status == 200
        assert exports
        assert exports[0].method == "POST"
        assert exports[0].headers["content-type"] == "application/x-protobuf"
        assert bytes.fromhex(TRACE_ID) in exports[0].body
