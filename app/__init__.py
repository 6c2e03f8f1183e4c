"""Resilient, typed HTTP clients for service-to-service calls, and their gateway."""

from app.aggregators import DashboardAggregator
from app.containers import Container, resolve, running_container
from app.proxies import (
    BaseServiceProxy,
    InterviewServiceProxy,
    ServiceProxyError,
    UserServiceProxy,
)
from app.settings import Settings, load_settings

__all__ = [
    "BaseServiceProxy",
    "Container",
    "DashboardAggregator",
    "InterviewServiceProxy",
    "ServiceProxyError",
    "Settings",
    "UserServiceProxy",
    "load_settings",
    "resolve",
    "running_container",
]
