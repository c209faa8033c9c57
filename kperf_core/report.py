"""Reports: upstream kperf's JSON keys, with kperf's additional facts under keys of their own.

Upstream keys keep upstream meanings (``total`` is the configured total, ``duration`` a Go duration
string, percentiles over successful requests only). Added keys:

* ``requests`` — sent / backgroundSent / succeeded / failed / notSent counts; ``requestsByURL``
  per key;
* ``load`` — arrival model, offered vs achieved rate, how the spec ended, whether the client process
  itself was the bottleneck (``clientSaturated``: the engine thread used ≥ 90 % of a core) or the
  ``client`` concurrency was (``concurrencyLimited``: every slot busy ≥ 90 % of the time while the
  limiter wanted more);
* ``latencyHistogramsByURL`` — the mergeable histograms the percentiles come from;
* ``durationSeconds``;
* ``requestsOutsideLoad`` — requests kperf sent that the counts above do not hold, by purpose
  (``prepare``, ``cleanup``, ``retriedAttempts``, ``earlierPages``, ``abandoned``), key and status
  code: the report's counts plus these are what the API server counted;
* ``connections`` — how many connections the load and the background sessions used;
* ``limits`` — limits of the machine or the server that were reached, one line each;
* ``timeSeries`` (per spec) — per-window successes, failures and latency buckets of each key
  (see :mod:`kperf_core.time_series`).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

from kperf_core.engine.recorder import OutsideLoad
from kperf_core.engine.spec_runner import SpecResult
from kperf_core.metrics import KeyStats, LatencyHistogram

SATURATED_CPU = 0.9
SATURATED_SLOTS = 0.9
#: how the summary names where the background connections' streams-per-connection figure came from
_STREAM_LIMIT_FROM = {
    "server": ", the server's HTTP/2 limit",
    "default": ", assumed: the server's HTTP/2 settings could not be read",
}


def go_duration(seconds: float) -> str:
    """Format like Go's ``time.Duration.String()``: ``1m40.072897445s``, ``250ms``, ``0s``."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_trim(ns / 1_000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_trim(ns / 1_000_000)}ms"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    secs = _trim_fixed(rest)
    text = f"{secs}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def _trim(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")


def _trim_fixed(ns: int) -> str:
    whole, frac = divmod(ns, 1_000_000_000)
    return f"{whole}.{frac:09d}".rstrip("0").rstrip(".") if frac else str(whole)


def full_key(key: str, server: str) -> str:
    """``"LIST /api/v1/pods?…"`` → upstream's ``"LIST https://host:port/api/v1/pods?…"``."""
    method, _, target = key.partition(" ")
    return f"{method} {server}{target}"


def _merge_stats(results: Iterable[SpecResult]) -> dict[str, KeyStats]:
    merged: dict[str, KeyStats] = {}
    for result in results:
        for key, stats in result.stats.items():
            target = merged.get(key)
            if target is None:
                target = merged[key] = KeyStats(keep_raw=stats.raw is not None)
            target.merge(stats)
    return merged


def _metrics_section(
    stats: dict[str, KeyStats],
    error_stats: collections.Counter[str],
    server: str,
    raw_errors: list[dict[str, Any]] | None,
    raw: bool,
) -> dict[str, Any]:
    section: dict[str, Any] = {}
    if error_stats:
        section["errorStats"] = dict(sorted(error_stats.items()))
    section["totalReceivedBytes"] = sum(s.bytes for s in stats.values())
    overall = LatencyHistogram()
    for s in stats.values():
        overall.merge(s.latencies)
    if overall.count:
        section["percentileLatencies"] = overall.percentiles()
    by_url = {
        full_key(k, server): s.latencies.percentiles()
        for k, s in sorted(stats.items())
        if s.latencies.count
    }
    if by_url:
        section["percentileLatenciesByURL"] = by_url
    if raw:
        section["latenciesByURL"] = {
            full_key(k, server): list(s.raw or ()) for k, s in sorted(stats.items()) if s.raw
        }
        if raw_errors:
            section["errors"] = [{**e, "url": f"{server}{e['url']}"} for e in raw_errors]
    section["requestsByURL"] = {
        full_key(k, server): {
            "succeeded": s.succeeded,
            "failed": s.failed,
            "receivedBytes": s.bytes,
        }
        for k, s in sorted(stats.items())
    }
    section["latencyHistogramsByURL"] = {
        full_key(k, server): s.latencies.to_dict()
        for k, s in sorted(stats.items())
        if s.latencies.count
    }
    return section


def _outside_section(outside: OutsideLoad, server: str) -> dict[str, Any]:
    return {
        purpose: {
            full_key(key, server): {str(status): n for status, n in sorted(statuses.items())}
            for key, statuses in sorted(keys.items())
        }
        for purpose, keys in sorted(outside.counts.items())
    }


def _render_facts(value: Any) -> Any:
    if isinstance(value, LatencyHistogram):
        return {
            "count": value.count,
            **({"percentiles": value.percentiles()} if value.count else {}),
        }
    if isinstance(value, dict):
        return {k: _render_facts(v) for k, v in value.items()}
    return value


def _load_held_by_server(result: SpecResult, load: dict[str, Any]) -> str | None:
    """The one line that says the load beside background sessions fell short of its rate
    while kperf had its connections and CPU to spare: the server, or the machine it shares,
    answered no faster (e.g. busy delivering the sessions' events: 10,000 watches and one write
    a second took a 2-core machine's local plane from 20 to 5 req/s, the load in a process of
    its own as well). None otherwise."""
    sessions = result.connections.get("background", {}).get("sessions", 0)
    rate, achieved = load["offeredRate"], load["achievedRate"]
    if not sessions or rate <= 0 or achieved >= 0.9 * rate or load["clientSaturated"]:
        return None
    if load["busyFraction"] < 0.5:  # the slots were free: not waiting for answers
        return None
    return (
        f"load: {achieved:.1f} of {rate:g} req/s beside {sessions} background sessions, its "
        f"`client` slots busy {load['busyFraction']:.0%} of the time and the engine at "
        f"{load['clientCpuUtilization']:.0%} of a core: the server (or the machine it shares) "
        "answered no faster"
    )


def spec_report(result: SpecResult, server: str, raw: bool = False) -> dict[str, Any]:
    elapsed = result.duration
    # the load's own completions: background sessions (watches) are not part of the rate
    completed = max(0, result.succeeded + result.failed - result.background_sent)
    # of one core per engine process: each is one thread
    cpu_utilization = result.cpu_seconds / elapsed / result.workers if elapsed > 0 else 0.0
    send_rate = result.sent / elapsed if elapsed > 0 else 0.0
    # Only a rate the limiter could not reach makes busy slots a limit; with rate 0 (unlimited)
    # closed-loop concurrency is the load model itself.
    wanted_more = result.rate > 0 and send_rate < 0.99 * result.rate
    report: dict[str, Any] = {
        "total": result.configured_total,
        "duration": go_duration(elapsed),
        **_metrics_section(result.stats, result.error_stats, server, result.raw_errors, raw),
        "durationSeconds": elapsed,
        "requests": _requests_section([result]),
        "load": {
            "arrival": result.arrival,
            "offeredRate": result.rate,
            "sendRate": send_rate,
            "achievedRate": completed / elapsed if elapsed > 0 else 0.0,
            "endedBy": result.ended_by,
            "maxSendLagSeconds": result.max_send_lag,
            "busyFraction": result.busy_fraction,
            "clientCpuSeconds": result.cpu_seconds,
            "clientCpuUtilization": cpu_utilization,
            "clientSaturated": cpu_utilization >= SATURATED_CPU,
            "concurrencyLimited": result.busy_fraction >= SATURATED_SLOTS and wanted_more,
            "workers": result.workers,
        },
    }
    report["requestsOutsideLoad"] = _outside_section(result.outside, server)
    report["connections"] = result.connections
    limits = list(result.limits)
    server_bound = _load_held_by_server(result, report["load"])
    if server_bound:
        limits.append(server_bound)
    if limits:
        report["limits"] = limits
    if result.request_type_facts:
        report["requestTypeFacts"] = [_render_facts(f) for f in result.request_type_facts]
    report["timeSeries"] = result.series.renamed(lambda key: full_key(key, server)).to_dict()
    return report


def aggregated_report(results: list[SpecResult], server: str, raw: bool = False) -> dict[str, Any]:
    errors: collections.Counter[str] = collections.Counter()
    raw_errors: list[dict[str, Any]] = []
    for r in results:
        errors.update(r.error_stats)
        raw_errors.extend(r.raw_errors or ())
    elapsed = sum(r.duration for r in results)
    stats = _merge_stats(results)
    outside = OutsideLoad()
    for r in results:
        outside.merge(r.outside)
    return {
        "total": sum(r.configured_total for r in results),
        "duration": go_duration(elapsed),
        **_metrics_section(stats, errors, server, raw_errors, raw),
        "durationSeconds": elapsed,
        "requests": _requests_section(results),
        "requestsOutsideLoad": _outside_section(outside, server),
    }


def _requests_section(results: list[SpecResult]) -> dict[str, int]:
    return {
        "sent": sum(r.sent for r in results),
        # sessions of background request types (watches), which ran beside the load
        "backgroundSent": sum(r.background_sent for r in results),
        "succeeded": sum(r.succeeded for r in results),
        "failed": sum(r.failed for r in results),
        "notSent": sum(r.not_sent for r in results),
    }


def runner_report(results: list[SpecResult], server: str, raw: bool = False) -> dict[str, Any]:
    """``kperf runner run``'s document (upstream's MultiSpecRunnerMetricReport)."""
    return {
        "perSpecResults": [spec_report(r, server, raw) for r in results],
        "aggregated": aggregated_report(results, server, raw),
    }


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A short human summary for stderr."""
    lines = []
    for i, spec in enumerate(report.get("perSpecResults", [])):
        req = spec["requests"]
        load = spec["load"]
        p = dict((q, v) for q, v in spec.get("percentileLatencies", []))
        latency = (
            f"p50 {p[0.5] * 1000:.2f} ms  p99 {p[0.99] * 1000:.2f} ms  max {p[1.0] * 1000:.2f} ms"
            if p
            else "no successful requests"
        )
        flags = []
        if load["clientSaturated"]:
            flags.append("CLIENT SATURATED: the engine used a whole core; add runners")
        if load["concurrencyLimited"]:
            flags.append("concurrency-limited: every `client` slot was busy")
        lines.append(
            f"spec {i}: {req['succeeded']} ok, {req['failed']} failed in {spec['duration']} "
            f"({load['achievedRate']:.1f} req/s, offered {load['offeredRate'] or 'unlimited'}); "
            f"{latency}"
        )
        if spec.get("errorStats"):
            lines.append(
                "  errors: " + ", ".join(f"{k}={v}" for k, v in spec["errorStats"].items())
            )
        if req.get("backgroundSent"):
            lines.append(
                f"  of which {req['backgroundSent']} sent by background sessions "
                "(their lists and watches)"
            )
        connections = spec.get("connections", {})
        if "background" in connections:
            load_conns, bg = connections["load"], connections["background"]
            lines.append(
                f"  connections: load {load_conns['opened']} (limit {load_conns['limit']}), "
                f"background {bg['opened']} for {bg['sessions']} sessions "
                f"(planned {bg['planned']}, up to {bg['streamsPerConnection']} streams each"
                f"{_STREAM_LIMIT_FROM.get(bg.get('streamLimitFrom', ''), '')})"
            )
        lines.extend(f"  LIMIT REACHED: {limit}" for limit in spec.get("limits", ()))
        lines.extend(f"  {flag}" for flag in flags)
    return lines
