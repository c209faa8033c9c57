"""Merging reports of several runners into one, exactly, without raw samples.

Every count is a sum; percentiles are recomputed from the merged ``latencyHistogramsByURL`` (the
histograms merge by adding bucket counts, so the result is the histogram of all runners' samples
together, and its percentiles carry the same ≤ 0.5 % relative error as one runner's). Upstream
merges raw latency arrays instead, which needs every runner to ship every sample.

Kept apart from :mod:`kperf_core.report` (which builds one runner's report from its measurements)
because it only reads the JSON documents runners produce: the runner-group server merges what
runners posted, in another process and possibly another kperf version.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kperf_core.engine.recorder import merge_connections
from kperf_core.errors import ConfigError
from kperf_core.metrics import LatencyHistogram
from kperf_core.report import go_duration
from kperf_core.time_series import TimeSeries

#: ``load`` figures that add up over runners running side by side.
_SUMMED_LOAD = ("offeredRate", "sendRate", "achievedRate", "clientCpuSeconds")


def merge_sections(sections: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge ``aggregated`` (or ``perSpecResults[i]``) sections of several runners."""
    if not sections:
        raise ValueError("nothing to merge")
    histograms: dict[str, LatencyHistogram] = {}
    for section in sections:
        for key, data in section.get("latencyHistogramsByURL", {}).items():
            try:
                histogram = LatencyHistogram.from_dict(data)
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(f"latency histogram of {key!r}: {exc}") from None
            histograms.setdefault(key, LatencyHistogram()).merge(histogram)
    seconds = max(float(s.get("durationSeconds", 0.0)) for s in sections)
    merged: dict[str, Any] = {
        "total": sum(int(s.get("total", 0)) for s in sections),
        # Runners run side by side: the group took as long as its slowest runner.
        "duration": go_duration(seconds),
    }
    errors = _sum_counters(s.get("errorStats", {}) for s in sections)
    if errors:
        merged["errorStats"] = dict(sorted(errors.items()))
    merged["totalReceivedBytes"] = sum(int(s.get("totalReceivedBytes", 0)) for s in sections)
    overall = LatencyHistogram()
    for histogram in histograms.values():
        overall.merge(histogram)
    if overall.count:
        merged["percentileLatencies"] = overall.percentiles()
    if histograms:
        merged["percentileLatenciesByURL"] = {
            key: histograms[key].percentiles() for key in sorted(histograms)
        }
    raw_errors = [e for s in sections for e in s.get("errors", ())]
    if raw_errors:
        merged["errors"] = raw_errors
    merged["requestsByURL"] = _merge_by_url(s.get("requestsByURL", {}) for s in sections)
    merged["latencyHistogramsByURL"] = {
        key: histograms[key].to_dict() for key in sorted(histograms)
    }
    merged["durationSeconds"] = seconds
    merged["requests"] = dict(_sum_counters(s.get("requests", {}) for s in sections))
    loads = [s["load"] for s in sections if "load" in s]
    if loads:
        merged["load"] = _merge_load(loads)
    # requests beside the load: with them the merged counts still equal the server's
    outside = [s["requestsOutsideLoad"] for s in sections if "requestsOutsideLoad" in s]
    if outside:
        merged["requestsOutsideLoad"] = {
            purpose: _merge_by_url(table.get(purpose, {}) for table in outside)
            for purpose in sorted({purpose for table in outside for purpose in table})
        }
    connections = [s["connections"] for s in sections if "connections" in s]
    if connections:
        merged["connections"] = {
            part: merge_connections([c[part] for c in connections if part in c])
            for part in sorted({part for c in connections for part in c})
        }
    limits = [line for s in sections for line in s.get("limits", ())]
    if limits:
        merged["limits"] = limits
    series = [s["timeSeries"] for s in sections if "timeSeries" in s]
    if series:
        merged["timeSeries"] = _merge_series(series)
    return merged


def _merge_series(documents: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Runners' windows of one spec added up, window by window from each runner's start."""
    merged = TimeSeries()
    for document in documents:
        try:
            merged.merge(TimeSeries.from_dict(document))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"time series: {exc}") from None
    return merged.to_dict()


def merge_runner_reports(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge whole ``kperf runner run`` documents of runners that ran the same profile."""
    if not reports:
        raise ValueError("nothing to merge")
    spec_counts = {len(r.get("perSpecResults", ())) for r in reports}
    if len(spec_counts) != 1:
        raise ConfigError(f"runner reports disagree on the number of specs: {sorted(spec_counts)}")
    return {
        "perSpecResults": [
            merge_sections([r["perSpecResults"][i] for r in reports])
            for i in range(spec_counts.pop())
        ],
        "aggregated": merge_sections([r["aggregated"] for r in reports]),
    }


def _sum_counters(counters: Iterable[Mapping[str, Any]]) -> collections.Counter[str]:
    total: collections.Counter[str] = collections.Counter()
    for counter in counters:
        for key, value in counter.items():
            total[key] += int(value)
    return total


def _merge_by_url(tables: Iterable[Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, int]]:
    merged: dict[str, collections.Counter[str]] = {}
    for table in tables:
        for key, counts in table.items():
            merged.setdefault(key, collections.Counter()).update(
                {k: int(v) for k, v in counts.items()}
            )
    return {key: dict(merged[key]) for key in sorted(merged)}


def _merge_load(loads: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Rates and CPU add up over runners; a flag is raised if any runner raised it."""
    merged: dict[str, Any] = {key: sum(float(load.get(key, 0.0)) for load in loads)
                              for key in _SUMMED_LOAD}  # fmt: skip
    merged["arrival"] = loads[0].get("arrival")
    merged["endedBy"] = ", ".join(sorted({str(load.get("endedBy")) for load in loads}))
    merged["maxSendLagSeconds"] = max(float(load.get("maxSendLagSeconds", 0.0)) for load in loads)
    merged["busyFraction"] = max(float(load.get("busyFraction", 0.0)) for load in loads)
    merged["clientCpuUtilization"] = max(
        float(load.get("clientCpuUtilization", 0.0)) for load in loads
    )
    for flag in ("clientSaturated", "concurrencyLimited"):
        merged[flag] = any(bool(load.get(flag)) for load in loads)
    merged["runners"] = len(loads)
    return merged
