"""Resilience policies: breaker, retry budget, bulkhead, deadlines, read cache."""
