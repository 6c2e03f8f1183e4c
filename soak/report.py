"""The run's figures as a console table and as the Load section of docs/faults.md."""

from __future__ import annotations

import statistics
import textwrap
from pathlib import Path

from soak.results import SoakResult

__all__ = [
    "DOCS_END",
    "DOCS_START",
    "format_docs_section",
    "format_table",
    "update_docs",
]

DOCS_START = "<!-- soak:start -->"
DOCS_END = "<!-- soak:end -->"
DOCS_TITLE = "# Faults"
# Line width of the prose in docs/faults.md, as in the README.
_DOCS_WIDTH = 88


def format_table(result: SoakResult) -> str:
    """Render the figures as two aligned columns for the terminal."""
    rows = _rows(result)
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines.append("")
    lines.append(_verdict(result))
    return "\n".join(lines)


def format_docs_section(result: SoakResult) -> str:
    """Render the figures as the Markdown Load section."""
    settings = result.settings
    set_up = (
        f"`soak/` runs a bounded load test on loopback. {settings.clients} client "
        "tasks request dashboards of the seeded users 1 to 60 from the gateway for "
        f"{settings.duration:g} s, while interview-service is stopped with SIGTERM "
        f"and started again on the same port every {settings.restart_every:g} s. "
        "user-service stays up, so every response should be 200, with `interviews` "
        "null and an `errors` entry while interview-service is down. The gateway, "
        "user-service and interview-service each run in their own process with the "
        "shipped `config.yml`. The clients run in the soak process on the same CPUs "
        "as the gateway, so requests per second describe this set-up, not the "
        "gateway alone."
    )
    readings = (
        "The gateway's resident set size (VmRSS in `/proc/<pid>/status`) and open "
        "descriptors (entries of `/proc/<pid>/fd`) are read twice while idle. The "
        f"start reading comes 1 s after a {settings.warmup:g} s warm-up with the same "
        "clients, and the end reading 1 s after the last response. Growth is end "
        "minus start. "
        "The warm-up has no restart, so the start reading comes before the "
        "gateway's first upstream failure, and the readings under load show "
        "whether RSS keeps growing after it. `soak/results.json` contains every "
        "reading, each restart and the latency of each second."
    )
    rows = "\n".join(
        f"| {name} | {value.replace('|', '/')} |" for name, value in _rows(result)
    )
    return "\n\n".join(
        [
            "## Load",
            _wrap(set_up),
            _wrap(readings),
            f"| Figure | Value |\n|---|---|\n{rows}",
            _wrap(_verdict(result)),
        ]
    )


def update_docs(path: Path, section: str) -> None:
    """Replace the text between the soak markers of ``path`` with ``section``.

    A missing file is created with a title and the markers; a file without the
    markers gets them appended.
    """
    block = f"{DOCS_START}\n{section}\n{DOCS_END}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{DOCS_TITLE}\n\n{block}\n", encoding="utf-8")
        return
    text = path.read_text(encoding="utf-8")
    start = text.find(DOCS_START)
    end = text.find(DOCS_END, start + 1) if start >= 0 else -1
    if start < 0 or end < 0:
        text = f"{text.rstrip()}\n\n{block}\n"
    else:
        text = text[:start] + block + text[end + len(DOCS_END) :]
    path.write_text(text, encoding="utf-8")


def _wrap(paragraph: str) -> str:
    return textwrap.fill(
        paragraph, width=_DOCS_WIDTH, break_long_words=False, break_on_hyphens=False
    )


def _rows(result: SoakResult) -> list[tuple[str, str]]:
    settings = result.settings
    machine = result.machine
    start, end = result.start_sample, result.end_sample
    latency = result.latency_ms
    return [
        ("Command", f"`{result.command}`, run on {result.date}"),
        (
            "Machine",
            f"{machine.arch}, {machine.cpus} CPUs ({machine.cpu_model}), "
            f"Python {machine.python}, Linux {machine.kernel}; load average "
            f"{machine.load_average:.2f} before the run",
        ),
        (
            "Settings",
            f"client timeout {settings.request_timeout:g} s, warm-up "
            f"{settings.warmup:g} s not counted, limits: RSS growth "
            f"{settings.max_rss_growth_mb:g} MiB, descriptor growth "
            f"{settings.max_fd_growth}",
        ),
        (
            "Duration",
            f"{settings.duration:g} s of requests, {result.load_seconds:.1f} s "
            "until the last response",
        ),
        ("Clients", str(settings.clients)),
        ("Restarts", _describe_restarts(result)),
        ("Requests served", f"{result.requests:,}"),
        ("Requests per second", f"{result.requests_per_second:,.0f}"),
        ("Status counts", _describe_counts(result.outcomes)),
        (
            "Degraded 200s",
            f"{result.degraded_responses:,}: "
            + (_describe_counts(result.degraded_parts) or "none"),
        ),
        (
            "Unexpected statuses",
            f"{result.unexpected + result.user_service_failures:,} "
            f"({result.user_service_failures:,} of them 503 or 504)",
        ),
        (
            "Latency",
            f"p50 {latency['p50']:.0f} ms, p99 {latency['p99']:.0f} ms, "
            f"max {latency['max']:.0f} ms; {_describe_worst_second(result)}",
        ),
        (
            "Gateway RSS",
            f"{start.rss_mb:.1f} MiB at start, {end.rss_mb:.1f} MiB at end, "
            f"{result.rss_growth_mb:+.1f} MiB; {_describe_rss_under_load(result)}",
        ),
        (
            "Gateway descriptors",
            f"{start.fds} at start, {end.fds} at end, {result.fd_growth:+d}; "
            f"at most {max(sample.fds for sample in result.samples)} under load",
        ),
        ("CPU", _describe_cpu(result)),
        ("Gateway log lines", _describe_counts(result.gateway_log, skip_zero=True)),
        (
            "interview-service calls",
            _describe_proxy_counters(result, "interview-service"),
        ),
        ("user-service calls", _describe_proxy_counters(result, "user-service")),
    ]


def _describe_restarts(result: SoakResult) -> str:
    restarts = result.restarts
    if not restarts:
        return "0"
    down = [restart.down_seconds for restart in restarts]
    codes = sorted({str(restart.exit_code) for restart in restarts})
    return (
        f"{len(restarts)}; interview-service down {statistics.median(down):.2f} s "
        f"on median, {max(down):.2f} s at most; exit codes {', '.join(codes)}"
    )


def _describe_counts(counts: dict[str, int], *, skip_zero: bool = False) -> str:
    return ", ".join(
        f"{name} {count:,}" for name, count in counts.items() if count or not skip_zero
    )


def _describe_rss_under_load(result: SoakResult) -> str:
    under_load = result.samples[1:-1]
    if not under_load:
        return "no reading under load"
    first, last = under_load[0], under_load[-1]
    return (
        f"under load {first.rss_mb:.1f} MiB at {first.elapsed:.0f} s, "
        f"{last.rss_mb:.1f} MiB at {last.elapsed:.0f} s"
    )


def _describe_cpu(result: SoakResult) -> str:
    start, end = result.start_sample, result.end_sample
    busy = end.cpu_seconds - start.cpu_seconds
    wall = end.elapsed - start.elapsed
    clients = result.client_cpu_seconds
    loads = [sample.load_average for sample in result.samples]
    return (
        f"gateway {busy:.0f} s and clients {clients:.0f} s in {wall:.0f} s "
        f"({busy / wall:.0%} and {clients / wall:.0%} of one CPU); machine load "
        f"average {min(loads):.1f} to {max(loads):.1f} during the run"
    )


def _describe_proxy_counters(result: SoakResult, service: str) -> str:
    """Summarize the gateway's counters of one upstream from its /metrics."""
    labels = {
        "service_calls_total": "calls",
        "service_retries_total": "retries",
        "service_retries_skipped_total": "retries skipped",
        "service_calls_rejected_total": "rejected",
        "service_cache_requests_total": "cache",
    }
    parts: list[str] = []
    for name, label in labels.items():
        values = result.proxy_counters.get(name, {})
        entries = [
            f"{key.removeprefix(service).strip() or 'total'} {value:,.0f}"
            for key, value in values.items()
            if key.split(" ", 1)[0] == service and value
        ]
        if entries:
            parts.append(f"{label}: {', '.join(entries)}")
    return "; ".join(parts) or "none"


def _describe_worst_second(result: SoakResult) -> str:
    worst = result.worst_second
    if worst is None:
        return "no requests"
    return f"worst second {worst.second}: p99 {worst.p99_ms:.0f} ms"


def _verdict(result: SoakResult) -> str:
    if result.passed:
        return (
            "Verdict: passed. Every response was 200, and the growth of RSS and "
            "open descriptors stayed within the limits."
        )
    return "Verdict: failed. " + "; ".join(result.failures) + "."
