"""The Grafana dashboard and Prometheus rules name only metrics the gateway exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from app.metrics import ProxyMetrics
from tests.helpers import require_tool

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "service-proxies.json"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "rules_test.yml"
METRIC_NAME = re.compile(r"\bservice_[a-z_]+\b")


def exported_names() -> set[str]:
    """Return every sample name the proxies' registry can expose."""
    registry = CollectorRegistry()
    metrics = ProxyMetrics(registry)
    metrics.for_call("user-service", "GET", "get_user")
    metrics.rejected.labels("user-service", "deadline")
    metrics.retries_skipped.labels("user-service", "not_retryable")
    metrics.cache_requests.labels("user-service", "hit")
    metrics.circuit_state.labels("user-service").set(0)
    return {sample.name for family in registry.collect() for sample in family.samples}


def panel_queries() -> list[str]:
    """Return the PromQL of every panel target of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        target["expr"] for panel in dashboard["panels"] for target in panel["targets"]
    ]


class TestGrafana:
    """deploy/grafana/service-proxies.json."""

    def test_dashboard_parses_with_panels(self) -> None:
        """The file is JSON with panels that each have a query."""
        queries = panel_queries()

        assert len(queries) >= 8
        assert all(query.strip() for query in queries)

    def test_queries_name_only_exported_metrics(self) -> None:
        """Every metric a panel names is one the gateway's /metrics exposes."""
        exported = exported_names()

        named = {
            name for query in panel_queries() for name in METRIC_NAME.findall(query)
        }

        assert named
        assert named <= exported, named - exported

    def test_latency_quantiles_sum_buckets_by_le(self) -> None:
        """Quantiles come from rate() of the buckets summed by le."""
        quantiles = [
            query for query in panel_queries() if "histogram_quantile" in query
        ]

        assert len(quantiles) == 4
        assert all(
            "le) (rate(service_call_duration_milliseconds_bucket[5m]))" in query
            for query in quantiles
        )
        assert sum("by (service, le)" in query for query in quantiles) == 3
        assert sum("by (service, operation, le)" in query for query in quantiles) == 1


class TestPrometheusRules:
    """deploy/prometheus/rules.yml, checked by promtool."""

    @pytest.fixture(autouse=True)
    def promtool(self) -> str:
        """The promtool command, which Debian's prometheus package installs."""
        return require_tool("promtool", "prometheus")

    def test_rules_check(self) -> None:
        """promtool check rules accepts the file."""
        result = subprocess.run(
            ["promtool", "check", "rules", str(RULES)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert result.returncode == 0, result.stdout + result.stderr

    def test_rule_unit_tests(self) -> None:
        """promtool test rules passes every alert and recording test."""
        result = subprocess.run(
            ["promtool", "test", "rules", str(RULE_TESTS)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert result.returncode == 0, result.stdout + result.stderr

    def test_rules_name_only_exported_metrics(self) -> None:
        """Every raw metric the rules read is one the gateway exposes."""
        named = set(METRIC_NAME.findall(RULES.read_text()))

        assert named <= exported_names(), named - exported_names()
