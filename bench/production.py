"""The proxies as production builds them: container, settings, metrics and logs."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml
from dependency_injector import providers
from loguru import logger

from app.containers import Container, running_container
from app.settings import CONFIG_FILE_VARIABLE, Settings, load_settings
from bench.processes import REPO_ROOT

__all__ = [
    "configure_file_logging",
    "production_container",
    "write_config",
]

_SERVICES = ("user_service", "interview_service")


def write_config(path: Path, *, user_url: str, interview_url: str) -> Path:
    """Write the shipped config.yml with the given URLs and no read cache.

    Every other setting keeps its shipped value. The cache entries are removed
    from the file because a ``cache_ttl`` of ``{}`` passed as an environment
    variable or an argument is merged into the file's entries, not put in their
    place, so it would leave the cache on.
    """
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / "config.yml").read_text())
    urls = {"user_service": user_url, "interview_service": interview_url}
    for section in _SERVICES:
        service = data.setdefault(section, {})
        service["url"] = urls[section]
        service.pop("cache_ttl", None)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def configure_file_logging(path: Path, *, level: str = "INFO") -> None:
    """Send log lines of ``level`` and above to a file, as production logs them.

    The line format is the one of app.logs: time, level, service and message.
    """
    logger.remove()
    logger.add(
        path,
        level=level,
        format=_format,
        backtrace=False,
        diagnose=False,
    )


def _format(record: Any) -> str:
    service = record["extra"].get("service")
    prefix = f"{service} " if service else ""
    return (
        "{time:YYYY-MM-DD HH:mm:ss.SSS} {level: <7} "
        + prefix.replace("{", "{{").replace("}", "}}")
        + "{message}\n{exception}"
    )


def load_production_settings(config: Path, **overrides: Any) -> Settings:
    """Load the settings from ``config``, then ``overrides``, and check the cache.

    Raises:
        RuntimeError: a read cache is still configured, which would make a
            benchmark measure cache hits instead of calls.
    """
    os.environ[CONFIG_FILE_VARIABLE] = str(config)
    settings = load_settings(**overrides)
    for section in _SERVICES:
        cached = getattr(settings, section).cache_ttl
        if cached:
            message = f"{section}.cache_ttl must be empty for a benchmark: {cached}"
            raise RuntimeError(message)
    return settings


@asynccontextmanager
async def production_container(
    config: Path, **overrides: Any
) -> AsyncIterator[Container]:
    """Open the real Container with the settings of ``config`` and ``overrides``."""
    settings = load_production_settings(config, **overrides)
    container = Container()
    container.settings.override(providers.Object(settings))
    async with running_container(container):
        yield container
