"""Aggregators that combine several service calls into one result."""

from app.aggregators.dashboard import DashboardAggregator

__all__ = ["DashboardAggregator"]
