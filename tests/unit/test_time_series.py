"""Time series: windows from the recorder's periods, flat memory over a long run, exact merges."""

from __future__ import annotations

import random

import pytest

from kperf_core.engine.recorder import CompletionRecorder, Progress
from kperf_core.metrics import LatencyHistogram
from kperf_core.report_merge import merge_sections
from kperf_core.time_series import (
    MAX_WINDOWS,
    WINDOW_ACCURACY,
    TimeSeries,
    bucket_quantile,
    coarse_index,
)

KEY = "GET /api/v1/namespaces/default/configmaps/a"
OTHER = "LIST /api/v1/pods?limit=500"


def _simulate(seconds: int, per_second: int, seed: int = 1) -> CompletionRecorder:
    """A recorder fed as the spec runner feeds it: completions, and a period closed per second."""
    rng = random.Random(seed)
    recorder = CompletionRecorder(keep_raw=False)
    recorder.start_series(100.0)
    for second in range(seconds):
        for _ in range(per_second):
            recorder.success(KEY if rng.random() < 0.7 else OTHER, rng.uniform(0.001, 0.2), 10)
        if second % 7 == 0:
            recorder.failure(KEY, "http/500", 0.01, 500)
        recorder.close_period(100.0 + second + 1.01)  # a tick a poll after the second's end
    return recorder


def test_windows_add_up_to_the_totals_and_hold_each_second() -> None:
    recorder = _simulate(seconds=30, per_second=20)
    series = recorder.series
    assert series.window_seconds == 1.0
    assert series.windows == 31  # the last tick opened window 30 (empty until the run ends)
    for key, stats in recorder.stats.items():
        one = series.keys[key]
        assert sum(one.succeeded) == stats.succeeded
        assert sum(one.failed) == stats.failed
        assert sum(sum(b.values()) for b in one.buckets) == stats.latencies.count
    overall = series.overall()
    assert overall.succeeded[:30] == [20] * 30
    assert overall.failed[:30] == [1 if s % 7 == 0 else 0 for s in range(30)]


def test_a_window_quantile_is_within_its_accuracy() -> None:
    recorder = CompletionRecorder(keep_raw=False)
    recorder.start_series(0.0)
    values = [0.001 * (1.05**i) for i in range(200)]
    for value in values:
        recorder.success(KEY, value, 0)
    recorder.close_period(1.0)
    exact = LatencyHistogram.of(values)
    for q in (0.5, 0.9, 0.99):
        window = recorder.series.keys[KEY].quantile(0, q)
        assert window is not None
        assert abs(window - exact.quantile(q)) <= 2 * WINDOW_ACCURACY * exact.quantile(q)


def test_a_ten_hour_run_keeps_as_many_windows_as_a_ten_minute_one() -> None:
    short = _simulate(seconds=600, per_second=1)
    long = _simulate(seconds=36_000, per_second=1)
    assert short.series.windows <= MAX_WINDOWS and long.series.windows <= MAX_WINDOWS
    assert long.series.windows > MAX_WINDOWS // 2
    assert long.series.window_seconds == 64.0  # 1 s doubled until 36,000 s fit in 600 windows
    for key, stats in long.stats.items():
        assert sum(long.series.keys[key].succeeded) == stats.succeeded
        assert len(long.series.keys[key].buckets) <= MAX_WINDOWS


def test_merge_is_exact_and_aligns_widths() -> None:
    a = _simulate(seconds=50, per_second=5, seed=1).series.copy()  # copies: every column full
    b = _simulate(seconds=50, per_second=5, seed=2).series.copy()
    both = a.copy()
    both.merge(b)
    for key in (KEY, OTHER):
        merged = both.keys[key]
        for window in range(both.windows):
            assert (
                merged.succeeded[window]
                == a.keys[key].succeeded[window] + (b.keys[key].succeeded[window])
            )
            buckets = dict(a.keys[key].buckets[window])
            for index, n in b.keys[key].buckets[window].items():
                buckets[index] = buckets.get(index, 0) + n
            assert merged.buckets[window] == buckets
    # a series twice as wide absorbs a narrower one: windows pair up before they add
    wide = b.copy()
    wide.widen()
    wide.merge(a)
    assert wide.window_seconds == 2.0
    assert wide.keys[KEY].succeeded[0] == sum(a.keys[KEY].succeeded[:2]) + sum(
        b.keys[KEY].succeeded[:2]
    )


def test_runner_reports_merge_their_series() -> None:
    a = _simulate(seconds=5, per_second=3, seed=1).series.to_dict()
    b = _simulate(seconds=8, per_second=3, seed=2).series.to_dict()
    merged = merge_sections([{"timeSeries": a}, {"timeSeries": b}])["timeSeries"]
    assert merged["windows"] == 9
    assert sum(merged["byURL"][KEY]["succeeded"]) == sum(a["byURL"][KEY]["succeeded"]) + sum(
        b["byURL"][KEY]["succeeded"]
    )


def test_round_trip_and_bad_documents() -> None:
    series = _simulate(seconds=3, per_second=4).series
    document = series.to_dict()
    assert TimeSeries.from_dict(document) == series
    with pytest.raises(ValueError, match="relative accuracy"):
        TimeSeries.from_dict({**document, "relativeAccuracy": 0.01})
    document["byURL"][KEY]["failed"].append(0)
    with pytest.raises(ValueError, match="windows"):
        TimeSeries.from_dict(document)


def test_coarse_buckets_hold_the_fine_buckets_values() -> None:
    for value in (1e-4, 0.0123, 0.5, 3.0, 42.0):
        fine = LatencyHistogram.of([value])
        (index,) = fine.buckets
        estimate = bucket_quantile({coarse_index(index): 1}, 0.5)
        assert estimate is not None
        assert abs(estimate - value) <= WINDOW_ACCURACY * value * 1.01


def test_progress_line_and_workers_sum() -> None:
    one = Progress(10.0, 1000, 990, 3, LatencyHistogram.of([0.002] * 99 + [0.05]), 30.0, 0)
    line = one.line()
    assert "10s elapsed" in line and "~20s left" in line and "99.0 req/s" in line
    assert "p50 2.00 ms" in line and "p99 2.00 ms" in line and "3 errors" in line
    both = Progress.combined([one, Progress(9.5, 500, 500, 0, LatencyHistogram(), 30.0, 0)])
    assert both.sent == 1500 and both.failed == 3 and both.workers == 2
    assert "2 workers" in both.line() and "149.0 req/s" in both.line()
    # by total: the time left is the requests left at the rate so far
    assert "~10s left" in Progress(10.0, 100, 100, 0, LatencyHistogram(), 0.0, 200).line()


def test_the_typed_report_keeps_the_series() -> None:
    import json
    from pathlib import Path

    from kperf_core.report_model import render_json, report_from_document

    path = Path(__file__).parents[1] / "data" / "reports" / "two-specs-slo.json"
    document = json.loads(path.read_text())
    spec = document["perSpecResults"][0]
    keys = sorted(spec["requestsByURL"])
    series = _simulate(seconds=4, per_second=2).series.renamed(
        {KEY: keys[0], OTHER: keys[-1]}.__getitem__
    )
    spec["timeSeries"] = series.to_dict()
    report = report_from_document(document, "r.json")
    assert report.per_spec_results[0].time_series == series
    assert report.per_spec_results[1].time_series is None  # a report without one still reads
    assert render_json(report) == json.dumps(document, indent=2) + "\n"
    spec["timeSeries"]["windows"] = "many"
    with pytest.raises(Exception, match=r"perSpecResults\[0\]\.timeSeries: not a time series"):
        report_from_document(document, "r.json")


def test_the_parent_shows_the_workers_sum_once_each_reported_on_the_spec() -> None:
    from kperf_core.engine.workers import _ProgressOfWorkers

    shown: list[Progress] = []
    progress = _ProgressOfWorkers(shown.append, workers=2)

    def figures(sent: int, spec: int) -> Progress:
        return Progress(1.0, sent, sent, 0, LatencyHistogram.of([0.01]), spec=spec, specs=2)

    progress.received(0, figures(10, spec=0))
    assert shown == []  # one worker's view alone would understate the rate
    progress.received(1, figures(20, spec=0))
    progress.received(0, figures(30, spec=0))
    assert [(p.sent, p.workers) for p in shown] == [(30, 2), (50, 2)]
    progress.received(1, figures(5, spec=1))  # the next spec: the last one's figures are over
    progress.received(0, figures(99, spec=0))  # a late message of the spec before: ignored
    progress.received(0, figures(7, spec=1))
    assert (shown[-1].sent, shown[-1].spec, len(shown)) == (12, 1, 3)
