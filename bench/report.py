"""Figures, targets, the printed table, BENCHMARKS.md and bench/results.json."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.clients import CLIENT_LABELS, CLIENTS
from bench.gateway import GATEWAYS
from bench.instructions import REFERENCE_STEPS, STEPS
from bench.overhead import LAYERS

__all__ = ["TARGETS", "Target", "figures", "render_text", "write_records"]

SCHEMA_VERSION = 1


_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "<": operator.lt,
}


@dataclass(frozen=True, slots=True)
class Target:
    """A bound that one figure should meet. A miss is reported, not raised."""

    key: str
    label: str
    symbol: str
    limit: float

    def check(self, value: float) -> bool:
        """Tell whether ``value`` meets the target."""
        return _COMPARISONS[self.symbol](value, self.limit)


TARGETS = (
    Target("proxy_vs_aiohttp_c16", "proxy / bare aiohttp at c16", ">=", 0.90),
    Target("gateway_vs_minimal", "our gateway / minimal gateway", ">=", 0.85),
    Target("dashboard_p50_vs_ideal", "dashboard p50 / ideal p50", "<=", 1.15),
    Target("rss_growth_mb_100k", "RSS growth over 100k calls, MiB", "<=", 10.0),
    Target("circuit_open_reject_p99_us", "circuit-open rejection p99, µs", "<", 100.0),
)


def figures(details: dict[str, Any]) -> dict[str, float]:
    """Flatten the section results into the stable keys of results.json."""
    flat: dict[str, float] = {}
    if "throughput" in details:
        for concurrency, clients in details["throughput"].items():
            for name in CLIENTS:
                flat[f"rps_{name}_c{concurrency}"] = clients[name]["median"]
                flat[f"{name}_vs_aiohttp_c{concurrency}"] = clients[name]["ratio"]
                flat[f"cpu_us_per_call_{name}_c{concurrency}"] = clients[name][
                    "cpu_us_per_call"
                ]
    if "layers" in details:
        for step, timing in details["layers"].items():
            flat[f"layer_cpu_us_{step}"] = timing["cpu_us_per_call"]
    if "overhead" in details:
        for layer, timing in details["overhead"].items():
            flat[f"overhead_{layer}_us"] = timing["best_us"]
    if "fanout" in details:
        fanout = details["fanout"]
        for variant in ("aggregator", "sequential", "ideal"):
            prefix = "dashboard" if variant == "aggregator" else f"dashboard_{variant}"
            flat[f"{prefix}_p50_ms"] = fanout[variant]["p50_ms"]
            flat[f"{prefix}_p99_ms"] = fanout[variant]["p99_ms"]
        ideal = fanout["ideal"]
        flat["dashboard_p50_vs_ideal"] = (
            fanout["aggregator"]["p50_ms"] / ideal["p50_ms"]
        )
        flat["dashboard_p99_vs_ideal"] = (
            fanout["aggregator"]["p99_ms"] / ideal["p99_ms"]
        )
    if "gateway" in details:
        gateway = details["gateway"]
        for name in GATEWAYS:
            flat[f"gateway_{name}_rps"] = gateway[name]["rps"]
            flat[f"gateway_{name}_p99_ms"] = gateway[name]["p99_ms"]
        for key, ratio in gateway["ratios"].items():
            flat[key] = ratio["median"]
    if "failure" in details:
        failure = details["failure"]
        flat["circuit_open_reject_p50_us"] = failure["circuit_open"]["p50_us"]
        flat["circuit_open_reject_p99_us"] = failure["circuit_open"]["p99_us"]
        flat["retry_amplification_outage"] = failure["amplification"]["amplification"]
        flat["retry_amplification_outage_no_budget"] = failure[
            "amplification_no_budget"
        ]["amplification"]
    if "memory" in details:
        memory = details["memory"]
        flat["rss_growth_mb_100k"] = memory["rss_growth_mib"]
        flat["fds_before"] = memory["fds_before"]
        flat["fds_after"] = memory["fds_after"]
        flat["memory_calls"] = memory["calls"]
    return flat


def target_results(flat: dict[str, float]) -> list[dict[str, Any]]:
    """Return every target whose figure was measured, with PASS or FAIL."""
    return [
        {
            "key": target.key,
            "label": target.label,
            "value": flat[target.key],
            "limit": f"{target.symbol} {target.limit:g}",
            "result": "PASS" if target.check(flat[target.key]) else "FAIL",
        }
        for target in TARGETS
        if target.key in flat
    ]


def render_text(record: dict[str, Any]) -> str:
    """Return the table printed at the end of a run."""
    details = record["details"]
    flat = figures(details)
    renderers: dict[str, Callable[[Any, dict[str, float]], list[str]]] = {
        "throughput": _text_throughput,
        "overhead": _text_overhead,
        "layers": _text_layers,
        "fanout": _text_fanout,
        "gateway": _text_gateway,
        "failure": _text_failure,
        "memory": _text_memory,
    }
    lines = ["", "=== results ==="]
    for section, render in renderers.items():
        if section in details:
            lines.extend(render(details[section], flat))

    lines.append("targets:")
    for target in target_results(flat):
        lines.append(
            f"  {target['result']}  {target['label']}: {target['value']:.3g} "
            f"(target {target['limit']})"
        )
    return "\n".join(lines)


def _text_throughput(throughput: dict[str, Any], flat: dict[str, float]) -> list[str]:
    concurrencies = list(throughput)
    lines = [
        "call throughput, requests/s (ratio to bare aiohttp):",
        f"  {'client':<18}" + "".join(f"{'c' + c:>20}" for c in concurrencies),
    ]
    for name in CLIENTS:
        cells = "".join(
            f"{flat[f'rps_{name}_c{c}']:>11.0f} ({flat[f'{name}_vs_aiohttp_c{c}']:.2f})"
            for c in concurrencies
        )
        lines.append(f"  {name:<18}{cells}")

    lines.append("client CPU time per call, µs:")
    for name in CLIENTS:
        cells = "".join(
            f"{flat[f'cpu_us_per_call_{name}_c{c}']:>20.0f}" for c in concurrencies
        )
        lines.append(f"  {name:<18}{cells}")
    return lines


def _text_overhead(overhead: dict[str, Any], flat: dict[str, float]) -> list[str]:
    lines = ["per-call overhead, µs (best of 9 repeats):"]
    lines.extend(
        f"  {layer:<24}{flat[f'overhead_{layer}_us']:>9.2f}" for layer in LAYERS
    )
    return lines


def _text_layers(layers: dict[str, Any], flat: dict[str, float]) -> list[str]:
    lines = ["CPU µs per call of each layer, concurrency 16:"]
    lines.extend(
        f"  {step:<28} {timing['cpu_us_per_call']:7.1f}"
        for step, timing in layers.items()
    )
    return lines


def _text_fanout(fanout: dict[str, Any], flat: dict[str, float]) -> list[str]:
    lines = ["dashboard fan-out, upstreams at 50 ms (p50 / p99 ms):"]
    for variant in ("aggregator", "sequential", "ideal"):
        row = fanout[variant]
        lines.append(f"  {variant:<24}{row['p50_ms']:>9.1f} / {row['p99_ms']:.1f}")
    return lines


def _text_gateway(gateway: dict[str, Any], flat: dict[str, float]) -> list[str]:
    lines = [
        f"gateway, {gateway['connections']} connections via {gateway['tool']} "
        "(dashboards/s, p99 ms):"
    ]
    for name in GATEWAYS:
        row = gateway[name]
        lines.append(f"  {name:<24}{row['rps']:>9.0f}   p99 {row['p99_ms']:.1f}")
    return lines


def _text_failure(failure: dict[str, Any], flat: dict[str, float]) -> list[str]:
    circuit = failure["circuit_open"]
    lines = [
        f"circuit-open rejection: p50 {circuit['p50_us']:.1f} µs, "
        f"p99 {circuit['p99_us']:.1f} µs over {circuit['iterations']} calls"
    ]
    for name in ("amplification", "amplification_no_budget"):
        run = failure[name]
        lines.append(
            f"{name.replace('_', ' ')} under outage: {run['amplification']:.3f} "
            f"({run['upstream_requests']} requests / {run['logical_calls']} calls)"
        )
    return lines


def _text_memory(memory: dict[str, Any], flat: dict[str, float]) -> list[str]:
    return [
        f"memory over {memory['calls']} calls: RSS {memory['rss_before_mib']:.1f} "
        f"-> {memory['rss_after_mib']:.1f} MiB, descriptors "
        f"{memory['fds_before']} -> {memory['fds_after']}"
    ]


def write_records(record: dict[str, Any], root: Path) -> None:
    """Write bench/results.json and BENCHMARKS.md from one complete run."""
    flat = figures(record["details"])
    results = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": record["generated_at"],
        "command": record["command"],
        "run_seconds": round(record["run_seconds"], 1),
        "machine": record["machine"],
        "versions": record["versions"],
        "figures": flat,
        "targets": target_results(flat),
        "parameters": record["parameters"],
        "section_seconds": record["section_seconds"],
        "section_cpu_share_of_other_processes": record[
            "section_cpu_share_of_other_processes"
        ],
        "details": record["details"],
    }
    text = json.dumps(_rounded(results), indent=2) + "\n"
    (root / "bench" / "results.json").write_text(text)
    (root / "BENCHMARKS.md").write_text(render_markdown(record, flat))


def _rounded(value: Any) -> Any:
    """Return ``value`` with every float rounded to 4 decimals, recursively."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(item) for item in value]
    return value


def render_markdown(record: dict[str, Any], flat: dict[str, float]) -> str:
    """Return BENCHMARKS.md for one complete run."""
    details = record["details"]
    parts = [
        _markdown_header(record),
        _markdown_targets(flat),
        _markdown_throughput(details["throughput"], flat),
        _markdown_overhead(details["overhead"]),
        _markdown_fanout(details["fanout"], flat, record["parameters"]["fanout"]),
        _markdown_gateway(details["gateway"], flat),
        _markdown_failure(details["failure"]),
        _markdown_memory(details["memory"]),
        _markdown_layers(details["layers"], flat),
        _markdown_reading(record),
        _markdown_machine(record),
    ]
    return "\n\n".join(parts) + "\n"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def _markdown_header(record: dict[str, Any]) -> str:
    return (
        "# Benchmarks\n\n"
        f"Generated by `{record['command']}`, which runs `python -m bench`, on "
        f"{record['generated_at']}. The benchmarks took "
        f"{record['run_seconds']:.0f} s. The same figures are in "
        "`bench/results.json` under stable keys. Every server and load generator "
        "ran in its own process on 127.0.0.1, so each client's event loop was "
        "measured alone."
    )


def _markdown_targets(flat: dict[str, float]) -> str:
    rows = [
        [
            target["label"],
            f"`{target['key']}`",
            f"{target['value']:.3g}",
            target["limit"],
            f"**{target['result']}**",
        ]
        for target in target_results(flat)
    ]
    return "## Targets\n\n" + _table(
        ["Figure", "Key", "Measured", "Target", "Result"], rows
    )


def _markdown_throughput(throughput: dict[str, Any], flat: dict[str, float]) -> str:
    concurrencies = list(throughput)
    runs_text = ", ".join(
        f"{len(throughput[c]['aiohttp']['runs'])} at c{c}" for c in concurrencies
    )
    header = ["Client", *(f"c{c} req/s (ratio)" for c in concurrencies)]
    rows = []
    for name in CLIENTS:
        cells = [
            f"{flat[f'rps_{name}_c{c}']:.0f} ({flat[f'{name}_vs_aiohttp_c{c}']:.2f})"
            for c in concurrencies
        ]
        rows.append([f"{name}: {CLIENT_LABELS[name]}", *cells])
    cpu = [
        [
            name,
            *(f"{throughput[c][name]['cpu_us_per_call']:.0f}" for c in concurrencies),
        ]
        for name in CLIENTS
    ]
    spread = [
        [
            name,
            *(
                " / ".join(f"{rps:.0f}" for rps in throughput[c][name]["runs"])
                for c in concurrencies
            ),
        ]
        for name in CLIENTS
    ]
    return (
        "## 1. Call throughput\n\n"
        "`GET /users/1` against a fixed-body upstream in its own process. "
        f"Requests per second are the median of the runs ({runs_text}). "
        "The ratio to bare "
        "aiohttp is taken run by run, over loads that alternated every "
        "half second, and its median is shown. Every call reads user 1, so "
        "the proxy reuses the request it built for that id, as it does for up "
        "to 1024 ids over all its reads. A read of a new id encodes the id and "
        "builds its request first.\n\n"
        + _table(header, rows)
        + "\n\nCPU time of the client process per call, in microseconds (median "
        "of the runs). It leaves out the upstream's share of the cores:\n\n"
        + _table(["Client", *(f"c{c}" for c in concurrencies)], cpu)
        + "\n\nhttpx's CPU time per call grows with concurrency, from "
        f"{throughput[concurrencies[0]]['httpx']['cpu_us_per_call']:.0f} µs at "
        f"c{concurrencies[0]} to "
        f"{throughput[concurrencies[-1]]['httpx']['cpu_us_per_call']:.0f} µs at "
        f"c{concurrencies[-1]}, with the same pool size as the others. This "
        "benchmark does not look into why."
        + "\n\nEvery run, in requests per second:\n\n"
        + _table(["Client", *(f"c{c}" for c in concurrencies)], spread)
    )


def _markdown_overhead(overhead: dict[str, Any]) -> str:
    rows = [
        [
            f"`{layer}`",
            LAYERS[layer],
            f"{overhead[layer]['best_us']:.2f}",
            f"{overhead[layer]['median_us']:.2f}",
        ]
        for layer in LAYERS
    ]
    return (
        "## 2. Per-call overhead of each layer\n\n"
        "In-process loops with no network, in microseconds per call: the best "
        "of 9 repeats, which is the figure to read, and their median, which "
        "also holds the moments when another process had the CPU.\n\n"
        + _table(["Layer", "What is timed", "Best µs", "Median µs"], rows)
    )


def _markdown_layers(layers: dict[str, Any], flat: dict[str, float]) -> str:
    """Render the timed ladder of this run next to bench/instructions.json."""
    path = Path(__file__).with_name("instructions.json")
    counts: dict[str, int] = {}
    counted = "`make bench-instructions` has not been run, so no step has a count."
    if path.exists():
        ladder = json.loads(path.read_text())
        counts = ladder["instructions_per_call"]
        counted = (
            "The instructions per call were counted by callgrind with `make "
            f"bench-instructions` on {ladder['generated_at']} over "
            f"{ladder['calls_counted']} calls; unlike time, a count does not "
            "depend on what else the machine runs."
        )
    cpu = {step: timing["cpu_us_per_call"] for step, timing in layers.items()}
    rows = _ladder_rows(cpu, counts, STEPS)
    limit = cpu["aiohttp_json"]
    proxy = cpu["proxy_get_user"]
    ratio = flat.get("proxy_vs_aiohttp_c16")
    measured = "" if ratio is None else f"; section 1 measured {ratio:.3f}"
    return (
        "## 7. Where the proxy's time goes\n\n"
        "Each step adds one layer of `get_user` to the one above it "
        "(`bench/instructions.py`). This run timed every step closed-loop at "
        "concurrency 16 against the fixed upstream, in turns of 0.5 s slices "
        "as in section 1, and reports the median CPU time of this process per "
        "call. "
        + counted
        + "\n\n"
        + _table(["Step", "What it adds", "CPU µs", "Added µs", "Instructions"], rows)
        + f"\n\nBare aiohttp took {limit:.1f} µs of CPU per call and `get_user` "
        f"{proxy:.1f} µs, a bound of {limit / proxy:.3f}{measured}. The client's "
        "CPU is the bottleneck at concurrency 16, so throughput follows this "
        "time. Time follows instructions only in part, as the two columns "
        "show.\n\n"
        "Bare aiohttp spends "
        f"{limit - cpu['aiohttp_no_timer']:.1f} µs of each call on its "
        "request timeout, which, like `asyncio.timeout`, schedules a timer per "
        "request and cancels it at the end (step `aiohttp_no_timer` leaves it "
        "out). The proxy times its attempts with `SharedTimeouts`, one timer "
        "per service, instead. The `hand_policies` step, one coroutine written "
        "by hand with the breaker, budget, bulkhead, deadline header, shared "
        "timeout and call metrics, adds "
        f"{cpu['hand_policies'] - cpu['aiohttp_validate']:+.1f} µs to the read "
        "it builds on. The engine's general structure, which checks deadlines, "
        "cool-downs, endpoints, redirects and errors on every call, shows in "
        "the steps after it: `engine_attempt` adds "
        f"{cpu['engine_attempt'] - cpu['hand_policies']:+.1f} µs to "
        "`hand_policies`, `engine_call` (metrics, status-page figures, in-flight "
        "count and span hook) "
        f"{cpu['engine_call'] - cpu['engine_attempt']:+.1f} µs, and `get_user` "
        "(the lookup of the kept request and the call's deadline) "
        f"{proxy - cpu['engine_call']:+.1f} µs.\n\n"
        "Time follows the number of Python calls only loosely. Under "
        "`sys.setprofile`, one `get_user` entered about 170 Python functions, resumed "
        "coroutines included, and one bare aiohttp read 180, because the proxy "
        "skips aiohttp's request timer and `resp.json()`. Yet in side-by-side "
        "runs of two versions of the engine in one process, registering each "
        "attempt with `SharedTimeouts` and removing it again cost 4 to 7 µs of "
        "CPU per call, against 0.7 µs in a loop of its own. Callgrind's cache "
        "simulation counted about 11,000 instruction-cache misses per call for "
        "bare aiohttp alone, so in a busy loop each instruction costs more than "
        "a micro-benchmark shows. The clients that alternate also move the "
        "figures: this ladder alternates aiohttp and proxy steps only, while "
        "section 1 alternates the proxy with httpx, aiohttp-retry and tenacity "
        "too."
    )


def _ladder_rows(
    cpu: dict[str, float], counts: dict[str, int], steps: dict[str, str]
) -> list[list[str]]:
    """Build the ladder's rows: CPU µs, µs added to the step above, count."""
    rows = []
    previous: float | None = None
    for step, micros in cpu.items():
        added = "" if previous is None else f"{micros - previous:+.1f}"
        count = f"{counts[step]:,}" if step in counts else "not counted"
        rows.append([f"`{step}`", steps[step], f"{micros:.1f}", added, count])
        if step not in REFERENCE_STEPS:
            previous = micros
    return rows


def _markdown_fanout(
    fanout: dict[str, Any], flat: dict[str, float], parameters: dict[str, Any]
) -> str:
    labels = {
        "aggregator": "DashboardAggregator.get_user_dashboard",
        "sequential": "the same three calls, one after another",
        "ideal": f"ideal: the slowest single call alone ({fanout['ideal']['call']})",
        "get_user": "get_user alone",
        "get_user_interviews": "get_user_interviews alone",
        "get_user_stats": "get_user_stats alone",
    }
    rows = [
        [
            label,
            f"{fanout[name]['p50_ms']:.1f}",
            f"{fanout[name]['p99_ms']:.1f}",
            str(fanout[name]["samples"]),
        ]
        for name, label in labels.items()
    ]
    return (
        "## 3. Dashboard fan-out\n\n"
        f"The sandbox services, each in its own process, respond after "
        f"{parameters['latency_ms']} ms. The proxies use the production settings "
        f"with the cache off, and {parameters['concurrency']} dashboards are in "
        f"flight at a time. Aggregator p50 / ideal p50: "
        f"**{flat['dashboard_p50_vs_ideal']:.3f}**.\n\n"
        + _table(["Variant", "p50 ms", "p99 ms", "Samples"], rows)
    )


def _markdown_gateway(gateway: dict[str, Any], flat: dict[str, float]) -> str:
    rows = [
        [
            f"`{name}`: {GATEWAYS[name]}",
            f"{gateway[name]['rps']:.0f}",
            f"{gateway[name]['p50_ms']:.1f}",
            f"{gateway[name]['p99_ms']:.1f}",
            " / ".join(f"{rps:.0f}" for rps in gateway[name]["runs_rps"]),
            str(gateway[name]["non_2xx"] + gateway[name]["errors"]),
        ]
        for name in GATEWAYS
    ]
    cache_reads = sum(gateway["cache_reads"].values())
    return (
        "## 4. Gateway throughput\n\n"
        f"`GET /api/dashboard/1` with {gateway['connections']} connections from "
        f"`{gateway['tool']}`. Both upstreams respond at once with fixed bodies. "
        "Each ratio is the median of the ratios of the rounds: ours on asyncio / "
        f"minimal on asyncio **{flat['gateway_vs_minimal']:.3f}**, ours on uvloop "
        f"/ minimal on uvloop {flat['gateway_uvloop_vs_minimal_uvloop']:.3f}, "
        f"ours on uvloop / ours on asyncio "
        f"{flat['gateway_uvloop_vs_asyncio']:.3f}. Our gateways counted "
        f"{cache_reads:.0f} cached reads, so every dashboard made three upstream "
        "calls. Our gateway, as `serve` runs it, freezes its start-up heap "
        "with `gc.freeze()`, so full collections skip the modules and proxies, "
        "and raises the collector's first threshold from 700 to 10,000. The "
        "minimal gateway does neither, since it stands for the bare "
        "libraries.\n\n"
        + _table(
            [
                "Gateway",
                "Dashboards/s",
                "p50 ms",
                "p99 ms",
                "Every run, /s",
                "Errors",
            ],
            rows,
        )
    )


def _markdown_failure(failure: dict[str, Any]) -> str:
    circuit = failure["circuit_open"]
    budget = failure["amplification"]
    no_budget = failure["amplification_no_budget"]
    rows = [
        [
            label,
            f"{run['amplification']:.3f}",
            str(run["upstream_requests"]),
            str(run["logical_calls"]),
            f"{run['retries']:.0f}",
            f"{run['seconds']:.1f}",
        ]
        for label, run in (
            ("retry budget on (production)", budget),
            ("retry budget off, for comparison", no_budget),
        )
    ]
    return (
        "## 5. Under failure\n\n"
        f'Rejection while the circuit is open: `await proxy.get_user("1")` '
        f"raising `CircuitOpenError` takes p50 **{circuit['p50_us']:.1f} µs**, "
        f"p99 **{circuit['p99_us']:.1f} µs**, mean {circuit['mean_us']:.1f} µs, "
        f"over {circuit['iterations']} calls. {circuit['opening_calls']} calls "
        "against a closed port opened the circuit first.\n\n"
        "Retry amplification: an upstream returns 503 for every request while 16 "
        f"callers call back to back, with {budget['retries_setting']} retries, "
        "the breaker off and backoff 0 s. The budget allows "
        f"max({budget['budget_min_retries']}, {budget['budget_ratio']:g} x calls) "
        f"retries per {budget['budget_window']:g} s window.\n\n"
        + _table(
            [
                "Run",
                "Upstream requests / call",
                "Upstream requests",
                "Logical calls",
                "Retries sent",
                "Seconds",
            ],
            rows,
        )
    )


def _markdown_memory(memory: dict[str, Any]) -> str:
    return (
        "## 6. Memory and descriptors\n\n"
        f"{memory['calls']} calls of `get_user` through one shared session, 16 at a "
        f"time, production settings with the cache off, in "
        f"{memory['seconds']:.1f} s. After a warm-up and a full garbage "
        f"collection, VmRSS went from {memory['rss_before_mib']:.1f} MiB to "
        f"{memory['rss_after_mib']:.1f} MiB (**{memory['rss_growth_mib']:+.2f} "
        f"MiB**), and open descriptors from {memory['fds_before']} to "
        f"{memory['fds_after']}."
    )


def _markdown_reading(record: dict[str, Any]) -> str:
    share = record["machine"]["cpu_share_of_other_processes"]
    by_section = ", ".join(
        f"{name} {value:.0%}"
        for name, value in record["section_cpu_share_of_other_processes"].items()
    )
    return (
        "## How to read these figures\n\n"
        "Client, upstream and load generator share the two cores of one machine, "
        "so absolute requests per second say as much about the machine as about "
        "the code. Compare the ratios instead. Each divides by bare aiohttp or "
        "by the minimal gateway, which were loaded in turns with ours within "
        "the same seconds. The single runs show how much noise to expect, and a "
        "difference smaller than their spread is not a finding. The upstreams "
        "serve fixed bodies on uvloop to take as little CPU as they can, yet "
        "at concurrency 16 and 64 the upstream and the client compete for the "
        "same two cores, which moves every ratio towards 1. The client's CPU "
        "time per call does not depend on that share, so it is the steadier "
        "figure for changes to the hot path. The overhead table times each "
        "layer alone. The measured gap to bare aiohttp also contains request "
        "building, exceptions and awaits between the layers, and "
        "`python -m bench.profile` writes `bench/profile.txt`, a profile of "
        "the proxy under load, to show where that time goes.\n\n"
        "Other processes on the machine take CPU from the benchmarks and slow "
        "them unevenly. During this run they used "
        f"{share:.0%} of the machine's CPU in all, and by section: {by_section}."
    )


def _markdown_machine(record: dict[str, Any]) -> str:
    machine = record["machine"]
    rows = [
        ["`uname -m`", machine["arch"]],
        ["`nproc`", str(machine["nproc"])],
        ["CPU (/proc/cpuinfo)", machine["cpu_model"]],
        ["Memory", f"{machine['memory_gib']} GiB"],
        ["Kernel", machine["kernel"]],
        ["Python", machine["python"]],
        ["wrk", machine["wrk"]],
        ["Load average at start", f"{machine['load_average_at_start']:.2f}"],
    ]
    versions = [[name, version] for name, version in record["versions"].items()]
    parameters = [
        [f"`{name}`", ", ".join(f"{key}={value}" for key, value in values.items())]
        for name, values in record["parameters"].items()
    ]
    return (
        "## Machine and method\n\n"
        f"Command: `{record['command']}` from the repository root.\n\n"
        + _table(["Item", "Value"], rows)
        + "\n\n"
        + _table(["Package", "Version"], versions)
        + "\n\nBounds of every measurement (seconds, calls, concurrency):\n\n"
        + _table(["Benchmark", "Parameters"], parameters)
    )
