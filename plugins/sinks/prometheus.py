"""The ``prometheus`` sink: the run's figures as metrics, to a file or pushed to a Pushgateway.

``--sink prometheus:FILE`` writes the OpenMetrics text format (for node_exporter's textfile
collector or ``promtool``); ``--sink prometheus:http://HOST:PORT[/metrics/job/NAME/…]`` PUTs the
same metrics to a Pushgateway (job ``kperf`` unless the URL names a grouping key), replacing that
group's previous push. The push uses the Prometheus text format 0.0.4, which every Pushgateway
accepts; the two renderings differ only where the formats do (counter family names, ``# EOF``).

Metrics come from the run's aggregate, one series per metrics key (labels ``method``, ``url`` — the
key without its server —, ``resource``, ``scope``); SLO verdicts, when evaluated, one per class.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit

from kperf_core import hookimpl
from kperf_core.api_calls import classify, url_path
from kperf_core.metrics import PERCENTILES
from kperf_core.report_model import Report
from kperf_core.sinks import Sink, SinkError, write_text

DEFAULT_JOB = "kperf"
PUSH_TIMEOUT = 30.0
TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    inner = ",".join(f'{name}="{_escape(value)}"' for name, value in labels.items())
    return "{" + inner + "}" if inner else ""


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


class _Family:
    def __init__(self, name: str, kind: str, help_text: str, unit: str = "") -> None:
        self.name, self.kind, self.help, self.unit = name, kind, help_text, unit
        self.samples: list[tuple[str, str, float]] = []

    def add(self, labels: str, value: float, suffix: str = "") -> None:
        self.samples.append((suffix, labels, value))

    def render(self, openmetrics: bool) -> Iterator[str]:
        if not self.samples:
            return
        # OpenMetrics names a counter family without `_total`; text 0.0.4 names it with.
        counter_suffix = "_total" if self.kind == "counter" else ""
        family = self.name if openmetrics else self.name + counter_suffix
        yield f"# TYPE {family} {self.kind}"
        if openmetrics and self.unit:
            yield f"# UNIT {family} {self.unit}"
        yield f"# HELP {family} {self.help}"
        for suffix, labels, value in self.samples:
            yield f"{self.name}{counter_suffix or suffix}{labels} {_number(value)}"


def render_metrics(report: Report, openmetrics: bool = True) -> str:
    aggregated = report.aggregated
    requests = _Family("kperf_requests", "counter", "Requests completed, by outcome.")
    received = _Family("kperf_received_bytes", "counter", "Response bytes received.", "bytes")
    latency = _Family(
        "kperf_request_duration_seconds",
        "summary",
        "Client-side latency of successful requests over the run.",
        "seconds",
    )
    errors = _Family("kperf_errors", "counter", "Failed requests by error class.")
    duration = _Family(
        "kperf_run_duration_seconds", "gauge", "Time the load ran (sum of specs).", "seconds"
    )
    slo = _Family("kperf_slo_passed", "gauge", "1 when the SLO class met its threshold, else 0.")
    slo_value = _Family(
        "kperf_slo_latency_seconds", "gauge", "The percentile an SLO class was held to.", "seconds"
    )
    slo_threshold = _Family(
        "kperf_slo_threshold_seconds", "gauge", "An SLO class's threshold.", "seconds"
    )
    for key, counts in aggregated.requests_by_url.items():
        call = classify(key)
        base = {
            "method": call.verb,
            "url": url_path(key).partition(" ")[2],
            "resource": call.resource,
            "scope": call.scope,
        }
        requests.add(_labels(**base, outcome="succeeded"), counts.succeeded)
        requests.add(_labels(**base, outcome="failed"), counts.failed)
        received.add(_labels(**base), counts.received_bytes)
        histogram = aggregated.latency_histograms_by_url.get(key)
        if histogram is not None and histogram.count:
            for p in PERCENTILES:
                latency.add(_labels(**base, quantile=str(p)), histogram.quantile(p))
            latency.add(_labels(**base), histogram.sum, "_sum")
            latency.add(_labels(**base), histogram.count, "_count")
    for error, count in aggregated.error_stats.items():
        errors.add(_labels(error=error), count)
    duration.add("", aggregated.duration_seconds)
    if report.slo is not None:
        for check in report.slo.checks:
            labels = _labels(resource=check.resource, verb=check.verb, scope=check.scope)
            slo.add(labels, 1 if check.passed else 0)
            slo_threshold.add(labels, check.threshold_seconds)
            if check.value_seconds is not None:
                slo_value.add(labels, check.value_seconds)
    families = (requests, received, latency, errors, duration, slo, slo_value, slo_threshold)
    lines = [line for family in families for line in family.render(openmetrics)]
    if openmetrics:
        lines.append("# EOF")
    return "\n".join(lines) + "\n"


def push_url(destination: str) -> str:
    """The Pushgateway URL to PUT to: job ``kperf`` unless the destination names a group."""
    parts = urlsplit(destination)
    if not parts.netloc:
        raise SinkError("needs a URL with a host, e.g. http://127.0.0.1:9091")
    if "/metrics/job/" in parts.path:
        return destination
    return destination.rstrip("/") + f"/metrics/job/{DEFAULT_JOB}"


def push(text: str, destination: str) -> None:
    url = push_url(destination)
    request = urllib.request.Request(
        url, data=text.encode(), method="PUT", headers={"Content-Type": TEXT_TYPE}
    )
    try:
        with urllib.request.urlopen(request, timeout=PUSH_TIMEOUT) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace").strip().splitlines()
        raise SinkError(
            f"Pushgateway {url} refused the push: HTTP {exc.code}"
            + (f": {detail[0]}" if detail else "")
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SinkError(f"cannot push to {url}: {reason}") from None


class PrometheusSink(Sink):
    name = "prometheus"

    def write(self, report: Report, destination: str | None) -> None:
        if destination is not None and urlsplit(destination).scheme in ("http", "https"):
            push(render_metrics(report, openmetrics=False), destination)
        else:
            write_text(render_metrics(report), destination)


@hookimpl
def kperf_register_sinks(registry):  # type: ignore[no-untyped-def]
    registry.add(PrometheusSink)
