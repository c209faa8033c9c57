"""The ``csv`` sink: one row per metrics key and spec (and the run's aggregate), for spreadsheets.

Latencies are seconds over successful requests (upstream's percentiles); ``resource`` and ``scope``
say which API call a key is (:mod:`kperf_core.api_calls`). With the server's view, rows whose
``spec`` is ``server`` hold the API server's count and latency of each call during the run (no
``url``: the server counts calls, not keys; ``failed`` = answers with a code of 400 or more;
latencies are its buckets' upper bounds, ``p0`` unknown). Last, a row per key and window of each
spec's time series (``windowStartSeconds`` and ``windowSeconds`` set, empty elsewhere):
``durationSeconds`` is the part of the window the spec covered, latencies are the window's p50 to
p99 (within 5 %; a window keeps no exact minimum or maximum).
"""

from __future__ import annotations

import csv
import io

from kperf_core import hookimpl
from kperf_core.api_calls import classify, url_path
from kperf_core.metrics import PERCENTILES
from kperf_core.report_model import Metrics, Report, SpecMetrics
from kperf_core.sinks import Sink, write_text

PERCENTILE_COLUMNS = tuple(f"p{round(p * 100)}" for p in PERCENTILES)
COLUMNS = (
    "spec",
    "method",
    "url",
    "resource",
    "scope",
    "succeeded",
    "failed",
    "receivedBytes",
    "durationSeconds",
    "throughput",
    *(f"{column}Seconds" for column in PERCENTILE_COLUMNS),
    "windowStartSeconds",
    "windowSeconds",
)
#: the percentiles a window row has (a window keeps buckets, not its exact minimum and maximum)
WINDOW_PERCENTILES = tuple(p for p in PERCENTILES if 0 < p < 1)


def _row(
    spec: str, key: str, counts: tuple[int, int, object], seconds: float, latencies: list[object]
) -> list[object]:
    """A row of ``key``: (succeeded, failed, received bytes) over ``seconds``; the caller adds
    the window columns."""
    call = classify(key)
    succeeded, failed, received = counts
    return [
        spec,
        call.verb,
        url_path(key).partition(" ")[2],
        call.resource,
        call.scope,
        succeeded,
        failed,
        received,
        seconds,
        succeeded / seconds if seconds > 0 else "",
        *latencies,
    ]


def _rows(spec: str, metrics: Metrics) -> list[list[object]]:
    rows = []
    for key, counts in metrics.requests_by_url.items():
        histogram = metrics.latency_histograms_by_url.get(key)
        latencies: list[object] = (
            [histogram.quantile(p) for p in PERCENTILES]
            if histogram is not None and histogram.count
            else [""] * len(PERCENTILES)
        )
        totals = (counts.succeeded, counts.failed, counts.received_bytes)
        rows.append([*_row(spec, key, totals, metrics.duration_seconds, latencies), "", ""])
    return rows


def _window_rows(spec: str, metrics: SpecMetrics) -> list[list[object]]:
    """A row per key and window of the spec's time series: its counts, rate and percentiles."""
    series = metrics.time_series
    if series is None:
        return []
    spans = series.spans(metrics.duration_seconds)
    rows: list[list[object]] = []
    for key, windows in series.keys.items():
        for index, (start, covered) in enumerate(spans):
            quantiles = (windows.quantile(index, p) for p in WINDOW_PERCENTILES)
            latencies = ["", *("" if v is None else v for v in quantiles), ""]
            counts = (windows.succeeded[index], windows.failed[index], "")
            rows.append(
                [*_row(spec, key, counts, covered, latencies), start, series.window_seconds]
            )
    return rows


def _server_rows(report: Report) -> list[list[object]]:
    view = report.server
    if view is None:
        return []
    rows = []
    seconds = report.aggregated.duration_seconds
    for call in view.calls:
        failed = call.failed
        latencies: list[object] = [""] * len(PERCENTILES)
        if call.latency is not None and call.latency.count:
            latencies = ["", *(call.latency.quantile(p) or "" for p in PERCENTILES[1:])]
        rows.append(
            [
                "server",
                call.verb,
                "",
                call.resource,
                call.scope,
                call.count - failed,
                failed,
                "",
                seconds,
                (call.count - failed) / seconds if seconds > 0 else "",
                *latencies,
                "",
                "",
            ]
        )
    return rows


def render_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for i, spec in enumerate(report.per_spec_results):
        writer.writerows(_rows(str(i), spec))
    writer.writerows(_rows("aggregated", report.aggregated))
    writer.writerows(_server_rows(report))
    for i, spec in enumerate(report.per_spec_results):
        writer.writerows(_window_rows(str(i), spec))
    return out.getvalue()


class CsvSink(Sink):
    name = "csv"

    def write(self, report: Report, destination: str | None) -> None:
        write_text(render_csv(report), destination)


@hookimpl
def kperf_register_sinks(registry):  # type: ignore[no-untyped-def]
    registry.add(CsvSink)
