"""Metric files of prometheus_client's multiprocess mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from app.metrics import (
    DURATION_BUCKETS_MS,
    MULTIPROC_DIR_VARIABLE,
    ProxyMetrics,
    clean_multiprocess_dir,
    scrape_registry,
)
from tests.helpers import write_counter


class TestScrapeRegistry:
    """/metrics serves the own registry, or the sum of every process's files."""

    def test_single_process_serves_own_registry(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without a multiprocess directory the container's registry is served."""
        monkeypatch.delenv(MULTIPROC_DIR_VARIABLE, raising=False)
        registry = CollectorRegistry()

        assert scrape_registry(registry) is registry

    def test_multiprocess_adds_up_processes(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Counts of two processes, one of them ended, add up in one sample."""
        write_counter(tmp_path, 3)
        write_counter(tmp_path, 4)
        monkeypatch.setenv(MULTIPROC_DIR_VARIABLE, str(tmp_path))

        merged = scrape_registry(CollectorRegistry())
        labels = {"service": "user-service", "method": "GET", "status": "success"}

        assert merged.get_sample_value("service_calls_total", labels) == 7


class TestCleanMultiprocessDir:
    """Start-up deletes the metric files of an earlier run."""

    def test_deletes_metric_files_only(self, tmp_path: Path) -> None:
        """*.db files go; other files stay."""
        write_counter(tmp_path, 1)
        other = tmp_path / "notes.txt"
        other.write_text("kept")

        clean_multiprocess_dir(str(tmp_path))

        assert list(tmp_path.glob("*.db")) == []
        assert other.read_text() == "kept"

    def test_creates_missing_directory(self, tmp_path: Path) -> None:
        """A directory that does not exist yet is created."""
        directory = tmp_path / "a" / "b"

        clean_multiprocess_dir(str(directory))

        assert directory.is_dir()

    def test_file_in_its_place_is_refused(self, tmp_path: Path) -> None:
        """A path that names a file is an error that names the variable."""
        taken = tmp_path / "metrics"
        taken.write_text("not a directory")

        with pytest.raises(ValueError, match=MULTIPROC_DIR_VARIABLE):
            clean_multiprocess_dir(str(taken))
        with pytest.raises(ValueError, match=MULTIPROC_DIR_VARIABLE):
            clean_multiprocess_dir(str(taken / "below"))


def _call_samples(
    registry: CollectorRegistry,
) -> set[tuple[str, tuple[Any, ...], float]]:
    """Return the call and duration samples, without the library's _created ones."""
    return {
        (sample.name, tuple(sorted(sample.labels.items())), sample.value)
        for family in registry.collect()
        if family.name in {"service_calls", "service_call_duration_milliseconds"}
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


class TestCallMetrics:
    """Calls and durations, kept as plain counts or in prometheus_client's classes."""

    DURATIONS_MS = (0.2, 1.0, 1.0001, 7.5, 60_000.0, 90_000.0)

    def record(self, metrics: ProxyMetrics) -> None:
        """Record the same calls, successes and failures, on two services."""
        for service in ("user-service", "interview-service"):
            call = metrics.for_call(service, "GET", "get_user")
            for number, duration in enumerate(self.DURATIONS_MS):
                if number % 3 == 0:
                    call.failed(duration)
                else:
                    call.succeeded(duration)

    def test_tallies_expose_what_the_library_would(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The counted families equal the Counter and Histogram samples exactly."""
        monkeypatch.delenv(MULTIPROC_DIR_VARIABLE, raising=False)
        tallied = CollectorRegistry()
        self.record(ProxyMetrics(tallied))
        # The variable picks prometheus_client's classes; their values stay in
        # memory, since the library chose its value class at import.
        monkeypatch.setenv(MULTIPROC_DIR_VARIABLE, str(tmp_path))
        library = CollectorRegistry()
        self.record(ProxyMetrics(library))

        expected = _call_samples(library)
        assert _call_samples(tallied) == expected
        # Every bucket edge, the sum and the count of both services are there.
        assert len(expected) == 2 * (2 + len(DURATION_BUCKETS_MS) + 1 + 2)

    def test_text_exposition_has_types_and_help(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """/metrics text declares the counter and the histogram with their help."""
        monkeypatch.delenv(MULTIPROC_DIR_VARIABLE, raising=False)
        registry = CollectorRegistry()
        self.record(ProxyMetrics(registry))

        text = generate_latest(registry).decode()

        assert "# TYPE service_calls_total counter" in text
        assert "# TYPE service_call_duration_milliseconds histogram" in text
        assert (
            'service_call_duration_milliseconds_bucket{le="+Inf",method="GET",'
            'operation="get_user",service="user-service"} 6.0'
        ) in text

    def test_second_registration_is_refused(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Two ProxyMetrics on one registry clash, as two Counters of a name would."""
        monkeypatch.delenv(MULTIPROC_DIR_VARIABLE, raising=False)
        registry = CollectorRegistry()
        ProxyMetrics(registry)

        with pytest.raises(ValueError, match="Duplicated timeseries"):
            ProxyMetrics(registry)
