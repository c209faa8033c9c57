"""The ``csv`` sink: one row per metrics key and spec (and the run's aggregate), for spreadsheets.

Latencies are seconds over successful requests (upstream's percentiles); ``resource`` and ``scope``
say which API call a key is (:mod:`kperf_core.api_calls`).
"""

from __future__ import annotations

import csv
import io

from kperf_core import hookimpl
from kperf_core.api_calls import classify, url_path
from kperf_core.metrics import PERCENTILES
from kperf_core.report_model import Metrics, Report
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
)


def _rows(spec: str, metrics: Metrics) -> list[list[object]]:
    rows = []
    for key, counts in metrics.requests_by_url.items():
        call = classify(key)
        histogram = metrics.latency_histograms_by_url.get(key)
        latencies = (
            [histogram.quantile(p) for p in PERCENTILES]
            if histogram is not None and histogram.count
            else [""] * len(PERCENTILES)
        )
        seconds = metrics.duration_seconds
        rows.append(
            [
                spec,
                call.verb,
                url_path(key).partition(" ")[2],
                call.resource,
                call.scope,
                counts.succeeded,
                counts.failed,
                counts.received_bytes,
                seconds,
                counts.succeeded / seconds if seconds > 0 else "",
                *latencies,
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
    return out.getvalue()


class CsvSink(Sink):
    name = "csv"

    def write(self, report: Report, destination: str | None) -> None:
        write_text(render_csv(report), destination)


@hookimpl
def kperf_register_sinks(registry):  # type: ignore[no-untyped-def]
    registry.add(CsvSink)
