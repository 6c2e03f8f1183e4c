"""Run the command line of the app on uvloop: ``python -m bench.uvloop_serve serve``.

``python -m app serve`` runs on asyncio's default loop. This launcher installs
uvloop's event loop policy first, so that aiohttp's ``web.run_app`` creates a
uvloop loop, and then hands its arguments to ``app.cli.main`` unchanged.
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

from app.cli import main

if __name__ == "__main__":
    uvloop.install()
    if not isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy):
        message = "uvloop's event loop policy did not install"
        raise SystemExit(message)
    raise SystemExit(main(sys.argv[1:]))
