"""Counters of the gateway's /metrics that explain how the proxies behaved."""

from __future__ import annotations

from collections import defaultdict

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["fetch_proxy_counters"]

# Sample name and the label, besides ``service``, that distinguishes its series.
_COUNTERS = {
    "service_calls_total": "status",
    "service_retries_total": "",
    "service_retries_skipped_total": "reason",
    "service_calls_rejected_total": "reason",
    "service_cache_requests_total": "result",
}


async def fetch_proxy_counters(
    session: aiohttp.ClientSession, url: str
) -> dict[str, dict[str, float]]:
    """Read the proxies' counters from a /metrics URL, summed over HTTP methods.

    Returns ``{sample name: {"<service> <label value>": value}}``.
    """
    async with session.get(url) as response:
        response.raise_for_status()
        text = await response.text()

    counters: defaultdict[str, defaultdict[str, float]] = defaultdict(
        lambda: defaultdict(float)
    )
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name not in _COUNTERS:
                continue
            label = _COUNTERS[sample.name]
            key = sample.labels.get("service", "")
            if label:
                key = f"{key} {sample.labels.get(label, '')}"
            counters[sample.name][key] += sample.value
    return {name: dict(sorted(values.items())) for name, values in counters.items()}
