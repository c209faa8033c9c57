"""Reports built from given latencies, for tests of what reads reports (sinks, SLOs, compare)."""

from __future__ import annotations

import attrs

from kperf_core.metrics import RELATIVE_ACCURACY, LatencyHistogram
from kperf_core.report import go_duration
from kperf_core.report_model import (
    REPORT_FORMAT,
    KeyCounts,
    LoadFacts,
    Metrics,
    Report,
    RequestCounts,
    RunFacts,
    SpecMetrics,
)

SERVER = "https://10.0.0.1:6443"
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)


def make_report(
    latencies: dict[str, list[float]],
    failed: dict[str, int] | None = None,
    seconds: float = 10.0,
    received: int = 100,
) -> Report:
    """One spec whose keys (``"LIST /api/v1/pods"``, server added) saw these latencies."""
    failed = failed or {}
    keys = sorted(set(latencies) | set(failed))
    histograms = {
        f"{k.split(' ')[0]} {SERVER}{k.split(' ', 1)[1]}": LatencyHistogram.of(latencies.get(k, ()))
        for k in keys
    }
    counts = {
        key: KeyCounts(succeeded=h.count, failed=failed.get(k, 0), received_bytes=received)
        for (key, h), k in zip(histograms.items(), keys, strict=True)
    }
    succeeded = sum(c.succeeded for c in counts.values())
    failures = sum(c.failed for c in counts.values())
    requests = RequestCounts(succeeded + failures, 0, succeeded, failures, 0)
    overall = LatencyHistogram()
    for h in histograms.values():
        overall.merge(h)
    common = dict(
        total=succeeded + failures,
        duration=go_duration(seconds),
        error_stats={"http/500": failures} if failures else {},
        total_received_bytes=received * len(keys),
        percentile_latencies=tuple(tuple(p) for p in overall.percentiles())
        if overall.count
        else None,
        requests_by_url=counts,
        latency_histograms_by_url={k: h for k, h in histograms.items() if h.count},
        duration_seconds=seconds,
        requests=requests,
    )
    load = LoadFacts("closed", 0, 1.0, 1.0, "total", 0.0, 0.5, 0.1, 0.01, False, False)
    return Report(
        per_spec_results=(SpecMetrics(**common, load=load),),  # type: ignore[arg-type]
        aggregated=Metrics(**common),  # type: ignore[arg-type]
        kperf=RunFacts("0.1.0", SERVER, "v1.34.0", 1, False, REPORT_FORMAT),
    )


def shifted(report: Report, buckets: int) -> Report:
    """The report with every aggregated latency times GAMMA**buckets (histograms moved by whole
    buckets, so the result is what a run that slow would have recorded)."""
    factor = GAMMA**buckets

    def move(h: LatencyHistogram) -> LatencyHistogram:
        moved = LatencyHistogram()
        moved.buckets = {i + buckets: n for i, n in h.buckets.items()}
        moved.count, moved.sum = h.count, h.sum * factor
        moved.min, moved.max = h.min * factor, h.max * factor
        return moved

    aggregated = report.aggregated
    histograms = {k: move(h) for k, h in aggregated.latency_histograms_by_url.items()}
    return attrs.evolve(
        report, aggregated=attrs.evolve(aggregated, latency_histograms_by_url=histograms)
    )


def with_time_series(
    report: Report, windows: dict[str, list[list[float]]], failed: dict[str, list[int]]
) -> Report:
    """The report whose spec 0 has one-second windows of these latencies and failures per key
    (keys as :func:`make_report` takes them)."""
    from kperf_core.time_series import TimeSeries, coarse_index

    series = TimeSeries()
    for k in sorted(set(windows) | set(failed)):
        key = f"{k.split(' ')[0]} {SERVER}{k.split(' ', 1)[1]}"
        latencies = windows.get(k, [])
        failures = failed.get(k, [])
        for index in range(max(len(latencies), len(failures))):
            buckets: dict[int, int] = {}
            for fine, n in LatencyHistogram.of(
                latencies[index] if index < len(latencies) else ()
            ).buckets.items():
                buckets[coarse_index(fine)] = buckets.get(coarse_index(fine), 0) + n
            series.add(
                index,
                key,
                sum(buckets.values()),
                failures[index] if index < len(failures) else 0,
                buckets,
            )
    spec = attrs.evolve(report.per_spec_results[0], time_series=series.copy())
    return attrs.evolve(report, per_spec_results=(spec, *report.per_spec_results[1:]))
