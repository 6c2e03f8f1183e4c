"""Choice of aiohttp's gunicorn worker class."""

from __future__ import annotations

import importlib.util

import pytest

from app.gateway.workers import worker_class

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


class TestWorkerClass:
    """The loop choice picks aiohttp's asyncio or uvloop worker."""

    def test_asyncio_choice(self) -> None:
        """--loop asyncio always gives the asyncio worker."""
        assert worker_class("asyncio") == "aiohttp.GunicornWebWorker"

    def test_default_follows_uvloop(self) -> None:
        """Without a choice, uvloop is used exactly when it is installed."""
        expected = (
            "aiohttp.GunicornUVLoopWebWorker"
            if HAS_UVLOOP
            else "aiohttp.GunicornWebWorker"
        )

        assert worker_class(None) == expected

    @pytest.mark.skipif(HAS_UVLOOP, reason="uvloop is installed")
    def test_uvloop_choice_without_uvloop(self) -> None:
        """--loop uvloop without the package raises a ValueError naming it."""
        with pytest.raises(ValueError, match="uvloop package"):
            worker_class("uvloop")

    @pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop is not installed")
    def test_uvloop_choice_with_uvloop(self) -> None:
        """--loop uvloop gives the uvloop worker when the package is there."""
        assert worker_class("uvloop") == "aiohttp.GunicornUVLoopWebWorker"
