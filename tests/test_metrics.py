"""Metric files of prometheus_client's multiprocess mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from app.metrics import MULTIPROC_DIR_VARIABLE, clean_multiprocess_dir, scrape_registry
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
