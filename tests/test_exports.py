"""The package's public names."""

from __future__ import annotations

import app
import app.proxies


def test_top_level_names_resolve() -> None:
    """Every name in app.__all__ exists and the list is sorted."""
    for name in app.__all__:
        assert hasattr(app, name), name
    assert app.__all__ == sorted(
        app.__all__, key=lambda name: (name[0].islower(), name)
    )


def test_proxy_package_names_resolve() -> None:
    """Every name in app.proxies.__all__ exists."""
    for name in app.proxies.__all__:
        assert hasattr(app.proxies, name), name
