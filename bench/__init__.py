"""Benchmarks of the proxies, the aggregator and the gateway against peer clients."""
