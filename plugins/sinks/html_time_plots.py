"""The HTML report's plots over time: throughput, latency percentiles and errors per window.

Drawn from a spec's ``timeSeries`` (see :mod:`kperf_core.time_series`) as inline SVG, like the rest
of the page. Each window is a point (a circle whose tooltip gives its figures) or a bar; a base
report's spec is drawn dashed beside the run's. A window's rate is its count over the part of it
the spec covered (the last window is usually partial); a last window that covered less than a
tenth of its width (requests draining at the end) is drawn with the one before it: a rate over a
few milliseconds would plot as noise, near 0 or far above the rest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import attrs

from kperf_core.report_model import SpecMetrics
from kperf_core.time_series import KeySeries, TimeSeries, bucket_quantile

WIDTH = 900
LEFT, RIGHT, TOP, BOTTOM = 70, WIDTH - 20, 24, 200
RATE_COLOUR, P50_COLOUR, P99_COLOUR, ERROR_COLOUR = "#0072B2", "#009E73", "#E69F00", "#D55E00"


@attrs.frozen
class _Point:
    seconds: float
    value: float
    tooltip: str


@attrs.frozen
class _Line:
    name: str
    colour: str
    points: tuple[_Point, ...]
    dashed: bool = False
    #: a circle per point, with its tooltip (the run's lines; a base's line has none)
    marked: bool = True


@attrs.frozen
class _Windows:
    """One spec's windows, every key added up, with the seconds each window covered."""

    starts: tuple[float, ...]
    covered: tuple[float, ...]
    overall: KeySeries

    @classmethod
    def of(cls, spec: SpecMetrics) -> _Windows | None:
        series: TimeSeries | None = spec.time_series
        if series is None or series.windows == 0:
            return None
        spans = series.spans(spec.duration_seconds)
        overall = series.overall()
        if len(spans) > 1 and spans[-1][1] < series.window_seconds / 10:
            overall.fold_last()
            _, covered = spans.pop()
            spans[-1] = (spans[-1][0], spans[-1][1] + covered)
        return cls(tuple(s for s, _ in spans), tuple(c for _, c in spans), overall)


def _nice_step(span: float, ticks: int) -> float:
    raw = max(span, 1e-12) / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def _chart(
    label: str, unit: str, x_max: float, lines: Sequence[_Line], bars: Sequence[_Point] = ()
) -> str:
    """A time axis of ``x_max`` seconds; lines and bars share a linear value axis from 0."""
    points = [p for line in lines for p in line.points] + list(bars)
    if not points:
        return ""
    y_max = max(p.value for p in points) or 1.0
    x_step, y_step = _nice_step(x_max, 10), _nice_step(y_max, 4)
    y_top = math.ceil(y_max / y_step) * y_step

    def x(seconds: float) -> float:
        return LEFT + seconds / x_max * (RIGHT - LEFT)

    def y(value: float) -> float:
        return BOTTOM - value / y_top * (BOTTOM - TOP)

    parts = []
    for i in range(int(x_max / x_step) + 1):
        at = x(i * x_step)
        parts.append(
            f'<line x1="{at:.1f}" y1="{TOP}" x2="{at:.1f}" y2="{BOTTOM}" stroke="#eee"/>'
            f'<text x="{at:.1f}" y="{BOTTOM + 14}" text-anchor="middle">{i * x_step:g} s</text>'
        )
    for i in range(round(y_top / y_step) + 1):
        at = y(i * y_step)
        parts.append(
            f'<line x1="{LEFT}" y1="{at:.1f}" x2="{RIGHT}" y2="{at:.1f}" stroke="#eee"/>'
            f'<text x="{LEFT - 6}" y="{at + 4:.1f}" text-anchor="end">{i * y_step:g}</text>'
        )
    bar_width = max(1.0, (RIGHT - LEFT) / max(len(bars), 1) * 0.8)
    for bar in bars:
        top = y(bar.value)
        parts.append(
            f'<rect class="window" x="{x(bar.seconds) - bar_width / 2:.1f}" y="{top:.1f}" '
            f'width="{bar_width:.1f}" height="{BOTTOM - top:.1f}" fill="{ERROR_COLOUR}">'
            f"<title>{escape(bar.tooltip)}</title></rect>"
        )
    legend = []
    for i, line in enumerate(lines):
        dash = ' stroke-dasharray="5,4"' if line.dashed else ""
        coordinates = " ".join(f"{x(p.seconds):.1f},{y(p.value):.1f}" for p in line.points)
        parts.append(
            f'<polyline fill="none" stroke="{line.colour}" stroke-width="2"{dash} '
            f'points="{coordinates}"><title>{escape(line.name)}</title></polyline>'
        )
        if line.marked:
            parts.extend(
                f'<circle class="window" cx="{x(p.seconds):.1f}" cy="{y(p.value):.1f}" r="2.5" '
                f'fill="{line.colour}"><title>{escape(p.tooltip)}</title></circle>'
                for p in line.points
            )
        at = LEFT + 170 * i
        legend.append(
            f'<line x1="{at}" y1="10" x2="{at + 24}" y2="10" stroke="{line.colour}" '
            f'stroke-width="2"{dash}/><text x="{at + 30}" y="14">{escape(line.name)}</text>'
        )
    height = BOTTOM + 24
    return (
        f'<svg role="img" aria-label="{escape(label)}" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}"><text x="0" y="{TOP + 4}">{escape(unit)}</text>'
        f"{''.join(legend)}{''.join(parts)}</svg>"
    )


def _rate_line(windows: _Windows, name: str, colour: str, dashed: bool) -> _Line:
    overall = windows.overall
    return _Line(
        name,
        colour,
        tuple(
            _Point(
                start + covered / 2,
                overall.succeeded[i] / covered,
                f"{start:g} s: {overall.succeeded[i]} ok, {overall.failed[i]} failed "
                f"({overall.succeeded[i] / covered:.1f} req/s)",
            )
            for i, (start, covered) in enumerate(zip(windows.starts, windows.covered, strict=True))
        ),
        dashed=dashed,
        marked=not dashed,
    )


def _latency_line(windows: _Windows, q: float, name: str, colour: str, dashed: bool) -> _Line:
    points = []
    for i, (start, covered) in enumerate(zip(windows.starts, windows.covered, strict=True)):
        value = bucket_quantile(windows.overall.buckets[i], q)
        if value is not None:  # a window without a success has no latency
            points.append(_Point(start + covered / 2, value * 1000, f"{start:g} s: {name} "
                                 f"{value * 1000:.2f} ms"))  # fmt: skip
    return _Line(name, colour, tuple(points), dashed=dashed, marked=not dashed)


def time_plots(spec: SpecMetrics, index: int, base: SpecMetrics | None = None) -> str:
    """Throughput, latency (p50, p99) and errors of spec ``index`` per window; ``base``'s spec of
    the same index dashed beside them."""
    windows = _Windows.of(spec)
    if windows is None:
        return f"<p>Spec {index}: this report has no time series (written by an earlier kperf).</p>"
    before = _Windows.of(base) if base is not None else None
    width = spec.time_series.window_seconds if spec.time_series is not None else 0
    rates = [_rate_line(windows, "successes/s", RATE_COLOUR, False)]
    latencies = [
        _latency_line(windows, 0.5, "p50", P50_COLOUR, False),
        _latency_line(windows, 0.99, "p99", P99_COLOUR, False),
    ]
    if before is not None:
        rates.append(_rate_line(before, "base successes/s", RATE_COLOUR, True))
        latencies += [
            _latency_line(before, 0.5, "base p50", P50_COLOUR, True),
            _latency_line(before, 0.99, "base p99", P99_COLOUR, True),
        ]
    seconds = max(spec.duration_seconds, base.duration_seconds if before and base else 0, 1.0)
    overall = windows.overall
    errors = [
        _Point(start + covered / 2, overall.failed[i] / covered, f"{start:g} s: {n} failed")
        for i, (start, covered) in enumerate(zip(windows.starts, windows.covered, strict=True))
        if (n := overall.failed[i])
    ]
    return (
        f"<h3>Spec {index} over time ({width:g} s windows)</h3>"
        + _chart(f"throughput over time, spec {index}", "req/s", seconds, rates)
        + _chart(f"latency over time, spec {index}", "ms", seconds, latencies)
        + (
            _chart(f"errors over time, spec {index}", "errors/s", seconds, [], errors)
            if errors
            else "<p>No failed request.</p>"
        )
    )
