"""Merging runners' reports: exact counts, percentiles from merged histograms."""

from __future__ import annotations

import math
import random

import pytest

from kperf_core.errors import ConfigError
from kperf_core.metrics import RELATIVE_ACCURACY, LatencyHistogram
from kperf_core.report_merge import merge_runner_reports, merge_sections

KEY = "LIST https://10.0.0.1:443/api/v1/pods?resourceVersion=0"
OTHER = "GET https://10.0.0.1:443/api/v1/namespaces/default/pods/p"


def nearest_rank(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(len(ordered) * p)) - 1]


def section(samples: dict[str, list[float]], failed: int, seconds: float) -> dict:
    """A runner's ``aggregated`` section as ``kperf runner run`` writes it."""
    return {
        "total": sum(len(v) for v in samples.values()) + failed,
        "duration": f"{seconds}s",
        "errorStats": {"http/429": failed} if failed else {},
        "totalReceivedBytes": 100 * sum(len(v) for v in samples.values()),
        "requestsByURL": {
            k: {"succeeded": len(v), "failed": failed if k == KEY else 0,
                "receivedBytes": 100 * len(v)}
            for k, v in samples.items()
        },
        "latencyHistogramsByURL": {k: LatencyHistogram.of(v).to_dict() for k, v in samples.items()},
        "durationSeconds": seconds,
        "requests": {"sent": sum(len(v) for v in samples.values()) + failed,
                     "backgroundSent": 0, "succeeded": sum(len(v) for v in samples.values()),
                     "failed": failed, "notSent": 0},
    }  # fmt: skip


def test_counts_are_sums_and_percentiles_match_all_samples() -> None:
    rng = random.Random(7)
    runners = [
        {
            KEY: [rng.lognormvariate(-4, 1) for _ in range(n)],
            OTHER: [rng.random() for _ in range(m)],
        }
        for n, m in ((500, 20), (1200, 0), (3, 400))
    ]
    sections = [section(samples, failed, 3.0 + i) for i, (samples, failed) in
                enumerate(zip(runners, (2, 0, 5), strict=True))]  # fmt: skip
    merged = merge_sections(sections)

    ok = sum(len(v) for r in runners for v in r.values())
    ok_key = sum(len(r[KEY]) for r in runners)
    assert merged["requests"] == {"sent": ok + 7, "backgroundSent": 0, "succeeded": ok,
                                  "failed": 7, "notSent": 0}  # fmt: skip
    assert merged["errorStats"] == {"http/429": 7}
    assert merged["totalReceivedBytes"] == 100 * ok
    assert merged["requestsByURL"][KEY] == {
        "succeeded": ok_key, "failed": 7, "receivedBytes": 100 * ok_key
    }  # fmt: skip
    assert merged["durationSeconds"] == 5.0  # the slowest runner
    everything = [v for r in runners for values in r.values() for v in values]
    for key, samples in ((KEY, [v for r in runners for v in r[KEY]]), (None, everything)):
        pairs = merged["percentileLatenciesByURL"][key] if key else merged["percentileLatencies"]
        for p, value in pairs:
            exact = nearest_rank(samples, p)
            assert abs(value - exact) <= RELATIVE_ACCURACY * exact, (key, p)
    # The merged histogram is the histogram of all samples: merging is exact.
    assert (
        merged["latencyHistogramsByURL"][KEY]["buckets"]
        == (LatencyHistogram.of([v for r in runners for v in r[KEY]]).to_dict()["buckets"])
    )


def test_whole_reports_merge_spec_by_spec() -> None:
    one = section({KEY: [0.01, 0.02]}, 0, 1.0)
    two = section({KEY: [0.03]}, 1, 2.0)
    merged = merge_runner_reports([
        {"perSpecResults": [one, two], "aggregated": merge_sections([one, two])},
        {"perSpecResults": [two, one], "aggregated": merge_sections([two, one])},
    ])  # fmt: skip
    assert [s["requests"]["succeeded"] for s in merged["perSpecResults"]] == [3, 3]
    assert merged["aggregated"]["requests"]["succeeded"] == 6
    assert merged["aggregated"]["percentileLatencies"][-1] == [1.0, 0.03]


def test_reports_of_different_profiles_do_not_merge() -> None:
    one = section({KEY: [0.01]}, 0, 1.0)
    with pytest.raises(ConfigError, match="number of specs"):
        merge_runner_reports([
            {"perSpecResults": [one], "aggregated": one},
            {"perSpecResults": [one, one], "aggregated": one},
        ])  # fmt: skip


def test_a_histogram_of_another_accuracy_is_refused() -> None:
    bad = section({KEY: [0.01]}, 0, 1.0)
    bad["latencyHistogramsByURL"][KEY]["relativeAccuracy"] = 0.01
    with pytest.raises(ConfigError, match="relative accuracy"):
        merge_sections([bad])


def test_requests_outside_the_load_connections_and_limits_merge() -> None:
    cleanup = "DELETE https://10.0.0.1:443/api/v1/namespaces/a/pods/:name"
    runners = []
    for opened, deleted in ((1, 3), (2, 4)):
        runner = section({KEY: [0.01]}, 0, 1.0)
        runner["requestsOutsideLoad"] = {"cleanup": {cleanup: {"200": deleted}}}
        runner["connections"] = {
            "load": {"opened": opened, "limit": 2},
            "background": {"sessions": 10, "opened": 1, "planned": 1,
                           "streamsPerConnection": 250, "establishedSeconds": 0.5 * opened},
        }  # fmt: skip
        runners.append(runner)
    runners[1]["limits"] = ["open-file limit: …"]
    merged = merge_sections(runners)
    assert merged["requestsOutsideLoad"] == {"cleanup": {cleanup: {"200": 7}}}
    assert merged["connections"] == {
        "background": {"sessions": 20, "opened": 2, "planned": 2,
                       "streamsPerConnection": 250, "establishedSeconds": 1.0},
        "load": {"opened": 3, "limit": 4},
    }  # fmt: skip
    assert merged["limits"] == ["open-file limit: …"]
