"""The gateway: a user's dashboard over HTTP, with metrics and health checks."""

from app.gateway.app import CONTAINER_KEY, create_app

__all__ = ["CONTAINER_KEY", "create_app"]
