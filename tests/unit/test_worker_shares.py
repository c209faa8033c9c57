"""Splitting a spec over engine processes and merging their results: exact, without a server."""

from __future__ import annotations

import collections

import pytest

from kperf_core.engine.recorder import OutsideLoad
from kperf_core.engine.spec_runner import SpecResult
from kperf_core.engine.workers import merge_results, worker_count, worker_spec
from kperf_core.metrics import KeyStats, LatencyHistogram
from kperf_core.profile import LoadProfile, LoadProfileSpec, WeightedRequest

KEY = "GET /api/v1/namespaces/a/configmaps/x?resourceVersion=0&timeout=1m0s"


def _spec(**fields) -> LoadProfileSpec:
    return LoadProfileSpec(requests=(WeightedRequest(1, "staleGet", None),), **fields)


def test_worker_count_is_capped_by_what_cannot_be_split() -> None:
    many = LoadProfile(1, (_spec(client=10, conns=4),))
    assert worker_count(3, many) == 3
    assert worker_count(8, many) == 4  # HTTP/2 connections are not split
    http1 = LoadProfile(1, (_spec(client=10, conns=1, disable_http2=True),))
    assert worker_count(8, http1) == 8  # over HTTP/1.1 `client` is the connection count
    tiny = LoadProfile(1, (_spec(client=10, conns=4), _spec(client=2, conns=2, total=1)))
    assert worker_count(8, tiny) == 1  # the smallest spec decides; a total of 1 is one request
    assert worker_count(None, many) >= 1
    # a server on this machine: its cores are the server's too
    for local in ("https://127.0.0.1:6443", "https://localhost:6443", "https://[::1]:6443"):
        assert worker_count(None, many, local) == 1
        assert worker_count(3, many, local) == 3  # unless asked


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_worker_shares_add_up_to_the_spec(count: int) -> None:
    spec = _spec(rate=100.0, total=1001, client=10, conns=5, duration=30.0)
    shares = [worker_spec(spec, i, count) for i in range(count)]
    assert sum(s.total for s in shares) == 1001
    assert sum(s.client for s in shares) == 10
    assert sum(s.conns for s in shares) == 5
    assert sum(s.rate for s in shares) == pytest.approx(100.0)
    assert {s.duration for s in shares} == {30.0}  # side by side, not one after the other
    assert min(s.client for s in shares) >= 1


def _result(latencies: list[float], failed: int, facts_events: int, seconds: float) -> SpecResult:
    stats = KeyStats()
    for value in latencies:
        stats.latencies.record(value)
    stats.succeeded, stats.failed, stats.bytes = len(latencies), failed, 10 * len(latencies)
    outside = OutsideLoad()
    outside.add("prepare", "LIST /api/v1/namespaces/a/configmaps", 200)
    lag = LatencyHistogram.of([0.01 * facts_events])
    return SpecResult(
        stats={KEY: stats},
        error_stats=collections.Counter({"http/429": failed}),
        duration=seconds,
        sent=len(latencies) + failed,
        configured_total=0,
        rate=50.0,
        arrival="closed",
        cpu_seconds=1.0,
        ended_by="duration",
        request_type_facts=[{"item": 1, "type": "watch", "events": {"MODIFIED": facts_events},
                             "lists": 1, "eventLag": lag}],
        background_sent=2,
        outside=outside,
        connections={"load": {"opened": 1, "limit": 1}},
        limits=[],
    )  # fmt: skip


def test_results_merge_as_if_one_process_measured_them_all() -> None:
    first, second = _result([0.1, 0.2, 0.3], 1, 5, 10.0), _result([0.4], 2, 7, 10.5)
    spec = _spec(rate=100.0, client=2, conns=2, duration=10.0)
    merged = merge_results([first, second], spec)
    stats = merged.stats[KEY]
    assert (stats.succeeded, stats.failed, stats.bytes) == (4, 3, 40)
    assert stats.latencies.to_dict() == LatencyHistogram.of([0.1, 0.2, 0.3, 0.4]).to_dict()
    assert merged.error_stats == {"http/429": 3}
    assert (merged.sent, merged.background_sent, merged.cpu_seconds) == (7, 4, 2.0)
    assert merged.duration == 10.5  # the slowest worker
    assert (merged.rate, merged.workers) == (100.0, 2)  # the spec's, not a worker's share
    assert merged.outside.counts == {"prepare": {"LIST /api/v1/namespaces/a/configmaps": {200: 2}}}
    assert merged.connections == {"load": {"opened": 2, "limit": 2}}
    [facts] = merged.request_type_facts
    assert (facts["item"], facts["type"], facts["lists"]) == (1, "watch", 2)
    assert facts["events"] == {"MODIFIED": 12}
    assert facts["eventLag"].count == 2
    # the workers' own results are not changed by merging
    assert first.stats[KEY].succeeded == 3 and first.request_type_facts[0]["lists"] == 1
