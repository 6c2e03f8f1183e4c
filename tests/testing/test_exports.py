"""Tests for the public names of app.testing."""

from __future__ import annotations

import app.testing


class TestExports:
    """app.testing lists its public names in a sorted __all__."""

    def test_all_sorted(self) -> None:
        """__all__ lists the public names in sorted order."""
        assert app.testing.__all__ == sorted(app.testing.__all__)

    def test_all_importable(self) -> None:
        """Every name in __all__ is importable from the package."""
        for name in app.testing.__all__:
            assert hasattr(app.testing, name), name

    def test_upstream_names(self) -> None:
        """Every public name of the scripted upstream is exported."""
        expected = {
            "MAX_BODY_BYTES",
            "MAX_HEADER_BYTES",
            "ReceivedRequest",
            "Reply",
            "ScriptedUpstream",
            "closed_port_url",
        }
        assert expected <= set(app.testing.__all__)
