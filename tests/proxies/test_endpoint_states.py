"""BaseServiceProxy.endpoint_states() and circuit_state()."""

from __future__ import annotations

import dataclasses

import pytest

from app.proxies import EndpointState
from tests.conftest import ProxyFactory


class TestEndpointStates:
    """The endpoint and circuit states that a proxy reports."""

    def test_one_active_endpoint(self, make_proxy: ProxyFactory) -> None:
        """A proxy reports its configured URL as its one active endpoint."""
        proxy = make_proxy("http://127.0.0.1:9/prefix")

        assert proxy.endpoint_states() == [
            EndpointState(url="http://127.0.0.1:9/prefix", state="active")
        ]

    def test_endpoint_state_is_frozen(self) -> None:
        """EndpointState is an immutable value."""
        state = EndpointState(url="http://127.0.0.1:9", state="active")

        with pytest.raises(dataclasses.FrozenInstanceError):
            state.state = "ejected"  # type: ignore[misc]

    def test_circuit_state_names(self, make_proxy: ProxyFactory) -> None:
        """circuit_state() names the breaker's state, or disabled without one."""
        with_breaker = make_proxy("http://127.0.0.1:9")
        without_breaker = make_proxy("http://127.0.0.1:9", breaker_enabled=False)

        assert with_breaker.circuit_state() == "closed"
        assert without_breaker.circuit_state() == "disabled"
