"""Bounded load test of the gateway while interview-service restarts."""
