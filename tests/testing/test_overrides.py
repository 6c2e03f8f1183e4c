"""Tests for instant_retries and override_providers."""

from __future__ import annotations

import time
from unittest.mock import AsyncMock

import aiohttp
import pytest
from dependency_injector import providers
from prometheus_client import CollectorRegistry

from app.containers import Container, resolve, running_container
from app.metrics import ProxyMetrics
from app.proxies import UserServiceProxy
from app.settings import ServiceSettings, Settings
from app.testing import SandboxServices, instant_retries, override_providers

BASE = ServiceSettings(url="http://127.0.0.1:1", retries=4, timeout=3.0)


def sandbox_settings(services: SandboxServices) -> Settings:
    """Build settings that point both proxies at the test's sandbox."""
    return Settings(
        user_service=ServiceSettings(url=services.user_url),
        interview_service=ServiceSettings(url=services.interview_url),
    )


class TestInstantRetries:
    """instant_retries zeroes the backoff waits and keeps everything else."""

    def test_zeroes_initial_wait(self) -> None:
        """The first backoff wait becomes zero."""
        assert instant_retries(BASE).backoff_initial == 0.0

    def test_zeroes_max_wait(self) -> None:
        """The backoff cap becomes zero, so no later wait exceeds zero."""
        assert instant_retries(BASE).backoff_max == 0.0

    def test_keeps_other_fields(self) -> None:
        """Retry count, timeout and URL stay as they were."""
        fast = instant_retries(BASE)
        assert fast.retries == 4
        assert fast.timeout == 3.0
        assert fast.url == BASE.url

    def test_leaves_original_alone(self) -> None:
        """The settings passed in keep their waits."""
        instant_retries(BASE)
        assert BASE.backoff_initial == 1.0

    async def test_proxy_retries_without_sleeping(
        self, sandbox_services: SandboxServices
    ) -> None:
        """Two retries after 503 take far less than the default 1 s + 2 s waits."""
        sandbox_services.faults.fail("get_user", 503, times=2)
        settings = instant_retries(ServiceSettings(url=sandbox_services.user_url))
        metrics = ProxyMetrics(CollectorRegistry())
        async with aiohttp.ClientSession() as session:
            proxy = UserServiceProxy(session, settings, metrics)
            started = time.monotonic()
            user = await proxy.get_user("1")
            elapsed = time.monotonic() - started

        assert user.id == "1"
        assert sandbox_services.faults.pending("get_user") == 0
        assert elapsed < 1.0


class TestOverrideProviders:
    """override_providers swaps providers for the block and restores them after."""

    async def test_fake_inside_real_after(
        self, sandbox_services: SandboxServices
    ) -> None:
        """resolve() returns the fake in the block and the real proxy after it."""
        container = Container()
        container.settings.override(
            providers.Object(sandbox_settings(sandbox_services))
        )
        fake = AsyncMock(spec=UserServiceProxy)
        async with running_container(container):
            with override_providers(container, user_service=fake):
                inside = await resolve(container.user_service)
            after = await resolve(container.user_service)

        assert inside is fake
        assert isinstance(after, UserServiceProxy)

    def test_several_at_once(self) -> None:
        """Every named provider is overridden in the same block."""
        container = Container()
        users = AsyncMock(spec=UserServiceProxy)
        registry = object()
        with override_providers(
            container, user_service=users, metrics_registry=registry
        ):
            assert container.user_service() is users
            assert container.metrics_registry() is registry

    def test_removes_overrides_on_exit(self) -> None:
        """No override made by the block remains after it."""
        container = Container()
        with override_providers(container, metrics_registry=object()):
            pass
        assert not container.metrics_registry.overridden

    def test_removes_overrides_on_error(self) -> None:
        """An exception in the block still removes the overrides."""
        container = Container()
        with (
            pytest.raises(RuntimeError),
            override_providers(container, metrics_registry=object()),
        ):
            raise RuntimeError
        assert not container.metrics_registry.overridden

    def test_earlier_override_returns(self) -> None:
        """An override made before the block applies again after it."""
        container = Container()
        earlier, inner = object(), object()
        container.metrics_registry.override(providers.Object(earlier))
        with override_providers(container, metrics_registry=inner):
            assert container.metrics_registry() is inner
        assert container.metrics_registry() is earlier

    def test_yields_container(self) -> None:
        """The block receives the container it overrides."""
        container = Container()
        with override_providers(container) as overridden:
            assert overridden is container

    def test_unknown_name_raises(self) -> None:
        """A name that is not a provider raises ValueError naming it."""
        with (
            pytest.raises(ValueError, match="unknown providers \\['users'\\]"),
            override_providers(Container(), users=object()),
        ):
            pass

    def test_unknown_name_overrides_nothing(self) -> None:
        """With one unknown name, the known names are not overridden either."""
        container = Container()
        with (
            pytest.raises(ValueError, match="unknown providers"),
            override_providers(container, metrics_registry=object(), users=1),
        ):
            pass
        assert not container.metrics_registry.overridden
