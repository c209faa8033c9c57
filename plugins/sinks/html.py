"""The ``html`` sink and ``kperf report html``: one self-contained page with plots.

Everything is inline — CSS and SVG drawn here from the report's histograms, no script, no font, no
CDN — so the file opens offline, in a CI artefact viewer or a mail attachment. The page shows the
run (server, load, outcome), the SLO verdicts, a table per key, each key's percentiles on a log
scale, each key's latency distribution (CDF, from the histogram buckets), throughput and errors per
spec, the API server's view beside the client's (per call, APF, etcd), and — given a base
report — the comparison of :mod:`kperf_core.comparison` with the base's
distributions drawn dashed beside the run's — and, per spec, throughput, latency percentiles and
errors over time (:mod:`kperf_plugins.sinks.html_time_plots`), the base's dashed.
"""

from __future__ import annotations

import math
from html import escape
from typing import TYPE_CHECKING, Any

from kperf_plugins.sinks.html_time_plots import time_plots

from kperf_core import hookimpl
from kperf_core.api_calls import url_path
from kperf_core.metrics import LatencyHistogram
from kperf_core.report_model import Metrics, Report, ServerHistogram, ServerView, SloVerdicts
from kperf_core.sinks import Baseline, Sink, write_text

if TYPE_CHECKING:
    from kperf_core.comparison import Comparison

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MARKS = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
WIDTH = 900
LABEL_WIDTH = 330
ROW = 26

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 960px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eee; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #116611; } .fail { color: #b00020; font-weight: 600; }
.facts { display: flex; flex-wrap: wrap; gap: 0.5em 2em; }
.facts div b { display: block; font-size: 1.3em; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
code { font-size: 12px; }
"""


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f} ms"


def _key_label(key: str, limit: int = 52) -> str:
    text = url_path(key)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _LogAxis:
    """Seconds → x on a log scale spanning the observed range, with decade ticks."""

    def __init__(self, low: float, high: float, left: float, right: float) -> None:
        low = max(low, 1e-6)
        high = max(high, low * 10)
        self.lo, self.hi = math.floor(math.log10(low)), math.ceil(math.log10(high))
        self.left, self.right = left, right

    def x(self, seconds: float) -> float:
        value = math.log10(max(seconds, 10.0**self.lo))
        return self.left + (value - self.lo) / (self.hi - self.lo) * (self.right - self.left)

    def ticks(self, top: float, bottom: float) -> str:
        parts = []
        for exponent in range(self.lo, self.hi + 1):
            x = self.x(10.0**exponent)
            parts.append(
                f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#ddd"/>'
                f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle">'
                f"{_ms(10.0**exponent).replace('.00', '')}</text>"
            )
        return "".join(parts)


def _range(histograms: list[LatencyHistogram]) -> tuple[float, float]:
    filled = [h for h in histograms if h.count]
    return min(h.min for h in filled), max(h.max for h in filled)


def percentile_plot(metrics: Metrics) -> str:
    """One row per key: p50, p90, p99 and max as marks on a log axis."""
    keys = [k for k, h in metrics.latency_histograms_by_url.items() if h.count]
    if not keys:
        return "<p>No successful request: nothing to plot.</p>"
    histograms = metrics.latency_histograms_by_url
    axis = _LogAxis(*_range([histograms[k] for k in keys]), LABEL_WIDTH, WIDTH - 20)
    height = 40 + ROW * len(keys) + 30
    bottom = 30 + ROW * len(keys)
    parts = [axis.ticks(20, bottom)]
    for row, key in enumerate(keys):
        y = 30 + ROW * row + ROW / 2
        h = histograms[key]
        xs = [axis.x(h.quantile(q)) for _, q in MARKS]
        parts.append(f'<text x="0" y="{y + 4:.1f}">{escape(_key_label(key))}</text>')
        parts.append(f'<line x1="{xs[0]:.1f}" y1="{y}" x2="{xs[-1]:.1f}" y2="{y}" stroke="#999"/>')
        for (name, q), x, colour in zip(MARKS, xs, PALETTE, strict=False):
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y}" r="5" fill="{colour}">'
                f"<title>{name} {_ms(h.quantile(q))}</title></circle>"
            )
    legend = "".join(
        f'<circle cx="{LABEL_WIDTH + 80 * i}" cy="10" r="5" fill="{PALETTE[i]}"/>'
        f'<text x="{LABEL_WIDTH + 80 * i + 9}" y="14">{name}</text>'
        for i, (name, _) in enumerate(MARKS)
    )
    return (
        f'<svg role="img" aria-label="latency percentiles per key" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}">{legend}{"".join(parts)}</svg>'
    )


#: Where the distribution is sampled: evenly, plus the tail a log axis would otherwise skip.
_CDF_FRACTIONS = sorted({i / 200 for i in range(201)} | {0.995, 0.999})


def _cdf_points(h: LatencyHistogram, axis: _LogAxis, top: float, bottom: float) -> str:
    return " ".join(
        f"{axis.x(h.quantile(f)):.1f},{bottom - (bottom - top) * f:.1f}" for f in _CDF_FRACTIONS
    )


def cdf_plot(metrics: Metrics, base: Metrics | None = None) -> str:
    """Each key's latency distribution; a base run's drawn dashed in the same colour."""
    current = {url_path(k): h for k, h in metrics.latency_histograms_by_url.items() if h.count}
    if not current:
        return ""
    before = (
        {url_path(k): h for k, h in base.latency_histograms_by_url.items() if h.count}
        if base is not None
        else {}
    )
    top, bottom, left = 20, 260, 60
    axis = _LogAxis(*_range([*current.values(), *before.values()]), left, WIDTH - 20)
    parts = [axis.ticks(top, bottom)]
    for fraction in (0, 0.5, 0.9, 1):
        y = bottom - (bottom - top) * fraction
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{WIDTH - 20}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{fraction:g}</text>'
        )
    legend = []
    for i, (key, h) in enumerate(current.items()):
        colour = PALETTE[i % len(PALETTE)]
        if key in before:
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
                f'stroke-dasharray="5,4" points="{_cdf_points(before[key], axis, top, bottom)}">'
                f"<title>base: {escape(key)}</title></polyline>"
            )
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
            f'points="{_cdf_points(h, axis, top, bottom)}"><title>{escape(key)}</title></polyline>'
        )
        y = bottom + 34 + 16 * i
        legend.append(
            f'<line x1="{left}" y1="{y - 4}" x2="{left + 24}" y2="{y - 4}" stroke="{colour}" '
            f'stroke-width="2"/><text x="{left + 30}" y="{y}">{escape(_key_label(key, 110))}</text>'
        )
    height = bottom + 34 + 16 * len(current)
    note = " (dashed: base)" if before else ""
    return (
        f'<svg role="img" aria-label="latency distribution per key{note}" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}">{"".join(parts)}{"".join(legend)}'
        "</svg>"
    )


def spec_plot(report: Report) -> str:
    """Achieved rate and failures per spec, as bars."""
    specs = report.per_spec_results
    peak = max([s.load.achieved_rate for s in specs] + [1e-9])
    parts = []
    for i, spec in enumerate(specs):
        y = 10 + ROW * i
        width = (WIDTH - LABEL_WIDTH - 200) * spec.load.achieved_rate / peak
        parts.append(
            f'<text x="0" y="{y + 14}">spec {i} ({escape(spec.load.arrival)}, '
            f"ended by {escape(spec.load.ended_by)})</text>"
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{width:.1f}" height="18" fill="{PALETTE[0]}"/>'
            f'<text x="{LABEL_WIDTH + width + 6:.1f}" y="{y + 14}">'
            f"{spec.load.achieved_rate:.1f} req/s, {spec.requests.failed} failed</text>"
        )
    height = 20 + ROW * len(specs)
    return (
        f'<svg role="img" aria-label="throughput per spec" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}">{"".join(parts)}</svg>'
    )


def _verdict_table(verdicts: SloVerdicts, side: str) -> str:
    verdict = (
        f'<p class="pass">{escape(side)}: every class met its threshold.</p>'
        if verdicts.passed
        else f'<p class="fail">{escape(side)}: {len(verdicts.failures)} of {len(verdicts.checks)} '
        "classes breached their threshold.</p>"
    )
    rows = "".join(
        f"<tr><td>{escape(c.name)}</td><td>{escape(c.outcome())}</td>"
        f'<td class="{"pass" if c.passed else "fail"}">{"pass" if c.passed else "BREACH"}</td></tr>'
        for c in verdicts.checks
    )
    return f"{verdict}<table><tr><th>class</th><th>measured</th><th>verdict</th></tr>{rows}</table>"


def _slo_section(report: Report) -> str:
    if report.slo is None:
        return "<p>Not evaluated (run with <code>--slo</code>).</p>"
    sections = [
        f"<p>Thresholds: {escape(report.slo.source)}</p>",
        _verdict_table(report.slo, "Client"),
    ]
    if report.server_slo is not None:
        sections.append(_verdict_table(report.server_slo, "Server (its histograms' bucket bounds)"))
    return "".join(sections)


def _bound(seconds: float | None) -> str:
    return "-" if seconds is None else f"≤ {_ms(seconds)}"


def server_section(report: Report) -> str:
    """The API server's view beside the client's: a table and a plot per API call, then what APF
    did, etcd latency and stored objects."""
    view = report.server
    if view is None:
        return "<p>Not taken (<code>--no-server-metrics</code>, or a report of a runner group).</p>"
    if view.unavailable:
        return f'<p class="fail">Unavailable: {escape(view.unavailable)}</p>'
    client = {call.key: totals for call, totals in report.aggregated.calls().items()}
    rows, plotted = [], []
    for call in view.calls:
        totals = client.get(call.key)
        h = totals.histogram if totals is not None and totals.histogram.count else None
        s = call.latency if call.latency is not None and call.latency.count else None
        rows.append(
            f"<tr><td>{escape(call.verb)} {escape(call.resource)} ({escape(call.scope)})</td>"
            f'<td class="n">{totals.requests if totals is not None else "-"}</td>'
            f'<td class="n">{call.count}</td>'
            f'<td class="n">{_ms(h.quantile(0.5)) if h else "-"}</td>'
            f'<td class="n">{_bound(s.quantile(0.5)) if s else "-"}</td>'
            f'<td class="n">{_ms(h.quantile(0.99)) if h else "-"}</td>'
            f'<td class="n">{_bound(s.quantile(0.99)) if s else "-"}</td></tr>'
        )
        if h is not None and s is not None:
            plotted.append((call, h, s))
    table = (
        "<p>Server latencies are the upper bounds of the server's histogram buckets "
        f"(<code>{escape(view.metrics.get('latency', ''))}</code>, every response code); client "
        "latencies are over successful calls. Rows without client calls are other clients' "
        "traffic during the run.</p><table><tr><th>call</th><th>client calls</th>"
        "<th>server calls</th><th>client p50</th><th>server p50</th><th>client p99</th>"
        f"<th>server p99</th></tr>{''.join(rows)}</table>"
    )
    return table + _client_server_plot(plotted) + _flow_control_table(view)


def _client_server_plot(plotted: list[tuple[Any, LatencyHistogram, ServerHistogram]]) -> str:
    """Per call: client p50/p99 (circles) and the server's p50/p99 bounds (squares)."""
    if not plotted:
        return ""
    values = [
        v for _, h, s in plotted for v in (h.min, h.max, *(s.quantile(q) or 0 for q in (0.5, 0.99)))
    ]
    axis = _LogAxis(min(v for v in values if v > 0), max(values), LABEL_WIDTH, WIDTH - 20)
    bottom = 30 + ROW * len(plotted)
    parts = [axis.ticks(20, bottom)]
    for row, (call, h, s) in enumerate(plotted):
        y = 30 + ROW * row + ROW / 2
        label = f"{call.verb} {call.resource} ({call.scope})"
        parts.append(f'<text x="0" y="{y + 4:.1f}">{escape(label)}</text>')
        for q, name in ((0.5, "p50"), (0.99, "p99")):
            x = axis.x(h.quantile(q))
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y - 4}" r="5" fill="{PALETTE[0]}">'
                f"<title>client {name} {_ms(h.quantile(q))}</title></circle>"
            )
            bound = s.quantile(q)
            if bound is not None:
                x = axis.x(bound)
                parts.append(
                    f'<rect x="{x - 5:.1f}" y="{y - 1}" width="10" height="10" '
                    f'fill="{PALETTE[1]}"><title>server {name} {_bound(bound)}</title></rect>'
                )
    legend = (
        f'<circle cx="{LABEL_WIDTH}" cy="10" r="5" fill="{PALETTE[0]}"/>'
        f'<text x="{LABEL_WIDTH + 9}" y="14">client p50, p99</text>'
        f'<rect x="{LABEL_WIDTH + 130}" y="5" width="10" height="10" fill="{PALETTE[1]}"/>'
        f'<text x="{LABEL_WIDTH + 145}" y="14">server p50, p99 (bucket bound)</text>'
    )
    height = bottom + 30
    return (
        f'<svg role="img" aria-label="client vs server latency per call" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}">{legend}{"".join(parts)}</svg>'
    )


def _flow_control_table(view: ServerView) -> str:
    rows = "".join(
        f"<tr><td>{escape(level.priority_level)}</td><td>{escape(level.flow_schema)}</td>"
        f'<td class="n">{level.dispatched}</td>'
        f'<td class="n">{escape(", ".join(f"{k}: {v}" for k, v in level.rejected.items()) or "0")}'
        "</td>"
        f'<td class="n">{_bound(level.queue_wait.quantile(0.99)) if level.queue_wait else "-"}'
        "</td></tr>"
        for level in view.flow_control
    )
    etcd = "".join(
        f"<tr><td>{escape(e.operation)}</td><td>{escape(e.object)}</td>"
        f'<td class="n">{e.latency.count}</td><td class="n">{_bound(e.latency.quantile(0.99))}</td>'
        "</tr>"
        for e in view.etcd_requests
    )
    stored = "".join(
        f'<tr><td>{escape(o.resource)}</td><td class="n">{o.before}</td>'
        f'<td class="n">{o.after}</td></tr>'
        for o in view.stored_objects
    )
    return (
        "<h3>API Priority and Fairness</h3><table><tr><th>priority level</th><th>flow schema</th>"
        f"<th>dispatched</th><th>rejected</th><th>queue wait p99</th></tr>{rows}</table>"
        "<h3>etcd requests</h3><table><tr><th>operation</th><th>object</th><th>requests</th>"
        f"<th>p99</th></tr>{etcd}</table>"
        + (
            "<h3>Objects in storage (changed)</h3><table><tr><th>resource</th><th>before</th>"
            f"<th>after</th></tr>{stored}</table>"
            if stored
            else ""
        )
    )


def _key_table(metrics: Metrics) -> str:
    rows = []
    for key, counts in metrics.requests_by_url.items():
        h = metrics.latency_histograms_by_url.get(key)
        cells = [_ms(h.quantile(q)) if h is not None and h.count else "-" for _, q in MARKS]
        rows.append(
            f"<tr><td><code>{escape(url_path(key))}</code></td>"
            f'<td class="n">{counts.succeeded}</td><td class="n">{counts.failed}</td>'
            + "".join(f'<td class="n">{c}</td>' for c in cells)
            + "</tr>"
        )
    head = "".join(f"<th>{name}</th>" for name, _ in MARKS)
    return f"<table><tr><th>key</th><th>ok</th><th>failed</th>{head}</tr>{''.join(rows)}</table>"


def _comparison_section(result: Comparison, base_name: str) -> str:
    def delta(value: float | None) -> str:
        return "" if value is None else f"{value:+.1%}"

    rows = []
    for k in (*result.keys, *result.server):
        verdict = (
            f'<td class="fail">REGRESSED: {escape(", ".join(k.reasons()))}</td>'
            if k.regressed
            else f'<td class="pass">{"ok" if k.present_in == "both" else "only in " + k.present_in}'
            "</td>"
        )
        rows.append(
            f"<tr><td><code>{escape(k.key)}</code></td>"
            f'<td class="n">{_ms(k.p50.base)} → {_ms(k.p50.new)} {delta(k.p50.relative)}</td>'
            f'<td class="n">{_ms(k.p99.base)} → {_ms(k.p99.new)} {delta(k.p99.relative)}</td>'
            f'<td class="n">{delta(k.throughput.relative)}</td>{verdict}</tr>'
        )
    summary = (
        f'<p class="fail">{len(result.regressions)} regressions beyond the '
        f"{result.budget:.0%} budget.</p>"
        if result.regressions
        else f'<p class="pass">No regression beyond the {result.budget:.0%} budget.</p>'
    )
    return (
        f"<p>Against <code>{escape(base_name)}</code>.</p>{summary}<table><tr><th>key</th>"
        f"<th>p50</th><th>p99</th><th>throughput</th><th>verdict</th></tr>{''.join(rows)}</table>"
    )


def render_html(
    report: Report, base: Report | None = None, base_name: str = "", budget: float = 0.1
) -> str:
    from kperf_core.comparison import compare

    a = report.aggregated
    facts = {
        "server": f"{report.kperf.server} ({report.kperf.server_version})",
        "requests": f"{a.requests.succeeded} ok, {a.requests.failed} failed",
        "load time": a.duration,
        "received": f"{a.total_received_bytes / 1e6:.2f} MB",
        "kperf": report.kperf.version,
    }
    if a.error_stats:
        facts["errors"] = ", ".join(f"{k}: {v}" for k, v in a.error_stats.items())
    if report.kperf.interrupted:
        facts["interrupted"] = "yes: the report holds what was measured until then"
    sections = [
        "<h1>kperf run report</h1>",
        '<div class="facts">'
        + "".join(f"<div>{escape(k)}<b>{escape(v)}</b></div>" for k, v in facts.items())
        + "</div>",
    ]
    if base is not None:
        sections += [
            "<h2>Comparison</h2>",
            _comparison_section(compare(base, report, budget), base_name),
        ]
    sections += [
        "<h2>SLO verdicts</h2>",
        _slo_section(report),
        "<h2>Latency per key</h2>",
        _key_table(a),
        percentile_plot(a),
        "<h2>Client vs server</h2>",
        server_section(report),
        "<h2>Latency distribution</h2>",
        cdf_plot(a, base.aggregated if base is not None else None),
        "<h2>Throughput per spec</h2>",
        spec_plot(report),
        "<h2>Over time</h2>",
    ]
    base_specs = base.per_spec_results if base is not None else ()
    for index, spec in enumerate(report.per_spec_results):
        sections.append(
            time_plots(spec, index, base_specs[index] if index < len(base_specs) else None)
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>kperf run report</title>"
        f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>\n"
    )


class HtmlSink(Sink):
    name = "html"

    def write(self, report: Report, destination: str | None) -> None:
        write_text(render_html(report), destination)

    def write_against(self, report: Report, base: Baseline, destination: str | None) -> None:
        write_text(render_html(report, base.report, base.name, base.budget), destination)


@hookimpl
def kperf_register_sinks(registry):  # type: ignore[no-untyped-def]
    registry.add(HtmlSink)
