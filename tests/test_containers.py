"""The container: session lifecycle, registries and overrides."""

from __future__ import annotations

from unittest.mock import AsyncMock

import pytest
from dependency_injector import providers
from prometheus_client import REGISTRY

from app.containers import (
    Container,
    init_resources,
    resolve,
    running_container,
    shutdown_resources,
)
from app.models import User
from app.proxies import ServiceSessionClosedError, UserServiceProxy
from tests.helpers import USER_JSON, Sandbox


def make_container(sandbox: Sandbox) -> Container:
    """Build a container whose proxies call the test's sandbox."""
    container = Container()
    container.settings.override(providers.Object(sandbox.settings()))
    return container


class TestSessionLifecycle:
    """The shared session opens in the running loop and closes at shutdown."""

    def test_construction_opens_no_session(self) -> None:
        """Building a container outside any event loop creates nothing."""
        container = Container()

        assert not container.http_session.initialized

    @pytest.mark.parametrize("run", [1, 2])
    async def test_call_then_shutdown_closes_session(
        self, sandbox: Sandbox, run: int
    ) -> None:
        """Each test's fresh loop gets its own session, closed at shutdown."""
        container = make_container(sandbox)
        await init_resources(container)
        proxy = await resolve(container.user_service)

        user = await proxy.get_user("1")
        session = await resolve(container.http_session)
        await shutdown_resources(container)

        assert user.id == "1"
        assert session.closed

    async def test_call_after_shutdown_raises_proxy_error(
        self, sandbox: Sandbox
    ) -> None:
        """A proxy used after shutdown raises ServiceSessionClosedError."""
        container = make_container(sandbox)
        await init_resources(container)
        proxy = await resolve(container.user_service)
        await shutdown_resources(container)

        with pytest.raises(ServiceSessionClosedError):
            await proxy.get_user("1")

    async def test_proxies_share_one_session(self, sandbox: Sandbox) -> None:
        """Both proxies are singletons on the same client session."""
        async with running_container(make_container(sandbox)) as container:
            users = await resolve(container.user_service)
            interviews = await resolve(container.interview_service)
            again = await resolve(container.user_service)
            session = await resolve(container.http_session)

        assert users is again
        assert users.engine.session is session
        assert interviews.engine.session is session


class TestRegistry:
    """Each container has a metrics registry of its own."""

    def test_registry_is_not_the_global_default(self) -> None:
        """The container's registry is not prometheus_client.REGISTRY."""
        assert Container().metrics_registry() is not REGISTRY

    def test_two_containers_do_not_collide(self) -> None:
        """Two containers define the same metric names without an error."""
        first = Container().metrics()
        second = Container().metrics()

        assert first.registry is not second.registry


class TestOverrides:
    """Tests replace providers the way the README shows."""

    async def test_override_user_service_with_a_fake(self, sandbox: Sandbox) -> None:
        """An overridden proxy reaches the aggregator; the real one is not built."""
        container = make_container(sandbox)
        fake = AsyncMock(spec=UserServiceProxy)
        fake.get_user.return_value = User.model_validate(USER_JSON)
        container.user_service.override(providers.Object(fake))
        async with running_container(container):
            proxy = await resolve(container.user_service)
            user = await proxy.get_user("1")

        assert user.email == "ada@example.com"
        fake.get_user.assert_awaited_once_with("1")


class TestRestart:
    """A container can be started again after a shutdown."""

    async def test_second_start_gets_a_new_session(self, sandbox: Sandbox) -> None:
        """Proxies resolved after a restart work on a fresh session."""
        container = make_container(sandbox)
        async with running_container(container):
            first = await resolve(container.user_service)
        async with running_container(container):
            second = await resolve(container.user_service)
            user = await second.get_user("1")

        assert second is not first
        assert user.id == "1"

    async def test_metrics_registry_survives_restart(self, sandbox: Sandbox) -> None:
        """The registry stays the same object, so /metrics keeps its series."""
        container = make_container(sandbox)
        async with running_container(container):
            registry = container.metrics_registry()
        async with running_container(container):
            again = container.metrics_registry()

        assert again is registry
