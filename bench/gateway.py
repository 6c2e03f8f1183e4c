"""Dashboards per second of our gateway and of the minimal one, under wrk."""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.processes import BenchError, ServerProcess, free_port, python_module

__all__ = ["GATEWAYS", "load_tool", "measure_gateways"]

DASHBOARD_PATH = "/api/dashboard/1"
# Stable names of the gateways, in the order of the table.
GATEWAYS = {
    "proxy_asyncio": "our gateway, python -m app serve (asyncio loop)",
    "proxy_uvloop": "our gateway on uvloop, python -m bench.uvloop_serve serve",
    "minimal_asyncio": "bench/minimal_gateway.py (asyncio loop)",
    "minimal_uvloop": "bench/minimal_gateway.py --loop uvloop",
}
# Ratios reported, each of one gateway to another, taken round by round.
_RATIOS = {
    "gateway_vs_minimal": ("proxy_asyncio", "minimal_asyncio"),
    "gateway_uvloop_vs_minimal_uvloop": ("proxy_uvloop", "minimal_uvloop"),
    "gateway_uvloop_vs_asyncio": ("proxy_uvloop", "proxy_asyncio"),
}
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_LATENCY = re.compile(r"^\s*(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_REQUESTS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(ms|s|m)", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)
# Seconds a load run may take past its duration before it counts as hung.
_LOAD_GRACE = 30.0


def load_tool() -> str:
    """Return ``wrk`` when it is installed, else the Python load generator."""
    return "wrk" if shutil.which("wrk") else "bench.loadgen"


def measure_gateways(
    *,
    user_url: str,
    interview_url: str,
    config: Path,
    log_dir: Path,
    connections: int,
    runs: int,
    seconds: float,
    warmup: float,
) -> dict[str, Any]:
    """Return dashboards per second and latencies of every gateway.

    The four gateways run at once, each in its own process. They are loaded
    one after another for ``runs`` rounds, in an order rotated each round, and
    an idle gateway takes no CPU from the loaded one. Ratios between gateways
    are taken within each round, and their median is reported.
    """
    tool = load_tool()
    with ExitStack() as stack:
        servers = {
            name: stack.enter_context(
                _gateway_process(name, user_url, interview_url, config, log_dir)
            )
            for name in GATEWAYS
        }
        for server in servers.values():
            _check_dashboard(server.url)
            _load(tool, server.url, connections, warmup)
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in GATEWAYS}
        names = list(GATEWAYS)
        for round_number in range(runs):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                run = _load(tool, servers[name].url, connections, seconds)
                samples[name].append(run)
        cache_reads = {
            name: _cache_reads(servers[name].url)
            for name in ("proxy_asyncio", "proxy_uvloop")
        }
    results: dict[str, Any] = {"tool": tool, "connections": connections}
    for name, runs_of_gateway in samples.items():
        results[name] = {
            "rps": statistics.median(run["rps"] for run in runs_of_gateway),
            "p50_ms": statistics.median(run["p50_ms"] for run in runs_of_gateway),
            "p99_ms": statistics.median(run["p99_ms"] for run in runs_of_gateway),
            "non_2xx": sum(run["non_2xx"] for run in runs_of_gateway),
            "errors": sum(run["errors"] for run in runs_of_gateway),
            "runs_rps": [run["rps"] for run in runs_of_gateway],
        }
    results["cache_reads"] = cache_reads
    results["ratios"] = {
        key: _paired_ratio(samples[mine], samples[base])
        for key, (mine, base) in _RATIOS.items()
    }
    return results


def _paired_ratio(
    mine: list[dict[str, float]], base: list[dict[str, float]]
) -> dict[str, Any]:
    """Return the ratio of requests per second in each round and its median."""
    ratios = [a["rps"] / b["rps"] for a, b in zip(mine, base, strict=True)]
    return {"runs": ratios, "median": statistics.median(ratios)}


def _gateway_process(
    name: str, user_url: str, interview_url: str, config: Path, log_dir: Path
) -> ServerProcess:
    if name.startswith("minimal"):
        loop = name.removeprefix("minimal_")
        args = python_module(
            "bench.minimal_gateway",
            *("--user-url", user_url, "--interview-url", interview_url),
            *("--loop", loop),
        )
        return ServerProcess(name, args, log_dir=log_dir)
    port = free_port()
    module = "app" if name == "proxy_asyncio" else "bench.uvloop_serve"
    env = {
        "SERVICE_PROXIES_CONFIG": str(config),
        "USER_SERVICE_URL": user_url,
        "INTERVIEW_SERVICE_URL": interview_url,
        "LOG_LEVEL": "INFO",
    }
    args = python_module(module, "serve", "--port", str(port))
    return ServerProcess(
        name, args, log_dir=log_dir, env=env, port=port, ready_path="/health/live"
    )


def _check_dashboard(base_url: str) -> None:
    with urllib.request.urlopen(base_url + DASHBOARD_PATH, timeout=5.0) as response:
        body = json.loads(response.read())
    if response.status != 200 or body.get("user", {}).get("id") != "1":
        message = f"{base_url}{DASHBOARD_PATH} returned {response.status}: {body}"
        raise BenchError(message)


def _cache_reads(base_url: str) -> float:
    """Return the cached reads a gateway counted, which must be none."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=5.0) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("service_cache_requests_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _load(
    tool: str, base_url: str, connections: int, seconds: float
) -> dict[str, float]:
    url = base_url + DASHBOARD_PATH
    if tool == "wrk":
        args = [
            "wrk",
            *("-t1", f"-c{connections}", f"-d{seconds:g}s"),
            *("--timeout", "5s", "--latency", url),
        ]
    else:
        args = python_module(
            "bench.loadgen",
            url,
            *("--connections", str(connections), "--duration", str(seconds)),
        )
    completed = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=seconds + _LOAD_GRACE,
        check=False,
    )
    if completed.returncode != 0:
        message = f"{' '.join(args)} exited {completed.returncode}: {completed.stderr}"
        raise BenchError(message)
    if tool == "wrk":
        return parse_wrk(completed.stdout)
    result: dict[str, float] = json.loads(completed.stdout)
    return result


def parse_wrk(output: str) -> dict[str, float]:
    """Read requests per second, p50, p99 and errors from wrk's --latency output."""
    latencies = {
        percent: float(value) * _UNITS_MS[unit]
        for percent, value, unit in _LATENCY.findall(output)
    }
    rps = _RPS.search(output)
    requests = _REQUESTS.search(output)
    if rps is None or requests is None or set(latencies) != {"50", "99"}:
        message = f"unexpected wrk output:\n{output}"
        raise BenchError(message)
    non_2xx = _NON_2XX.search(output)
    socket_errors = _SOCKET_ERRORS.search(output)
    return {
        "requests": int(requests.group(1)),
        "rps": float(rps.group(1)),
        "p50_ms": latencies["50"],
        "p99_ms": latencies["99"],
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "errors": sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
    }
