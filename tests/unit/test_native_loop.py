"""The fast lane's parts that need no server: its choice (which specs the native loop runs, and
why not the others), its bucketing (exactly LatencyHistogram.record's), and the merge of its
batches into the spec's recorder (exactly what recording each latency gives)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import pytest

from kperf_core.engine.native_transport import (
    LIBCURL,
    NATIVE,
    PYTHON,
    TransportChoice,
    choose_loop,
)
from kperf_core.engine.recorder import CompletionRecorder
from kperf_core.errors import ConfigError
from kperf_core.metrics import LatencyHistogram
from kperf_core.profile import LoadProfileSpec, WeightedRequest
from kperf_core.request_types import BuildContext, RequestType, WireRequest, wire_request

_REF = {"version": "v1", "resource": "configmaps", "namespace": "default"}
_ON_NATIVE = TransportChoice(NATIVE)


class _Changing(RequestType):
    """A third-party type whose requests may differ (it has no fixed_request: the default)."""

    name = "thirdParty"
    config_type = dict

    def build(self) -> WireRequest:
        return wire_request("GET", "/api/v1/namespaces")

    def plain_exchanges(self) -> bool:
        return True


def _spec(instances: list[RequestType], shares: list[int] | None = None, **fields: Any) -> Any:
    items = tuple(
        WeightedRequest(shares=share, kind=i.name, config=i.config)
        for i, share in zip(instances, shares or [1] * len(instances), strict=True)
    )
    return LoadProfileSpec(requests=items, **fields)


def test_closed_loops_of_gets_and_drained_lists_run_in_the_native_loop(
    kperf_request_type: Callable[..., RequestType],
) -> None:
    instances = [
        kperf_request_type("staleGet", **_REF, name="a"),
        kperf_request_type("quorumList", **_REF, limit=5),
    ]
    spec = _spec(instances, [3, 1], rate=100)
    assert choose_loop(spec, instances, _ON_NATIVE, False, environ={}) == TransportChoice(NATIVE)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"arrival": "constant", "rate": 10}, "arrival constant"),
        ({"max_retries": 1}, "maxRetries > 0"),
        ({"keep_raw": True}, "--raw-data"),
        ({"transport": TransportChoice(LIBCURL, "x")}, "the load runs on libcurl"),
    ],
)
def test_what_needs_python_per_request_keeps_the_python_loop(
    change: dict[str, Any], reason: str, kperf_request_type: Callable[..., RequestType]
) -> None:
    instances = [kperf_request_type("staleGet", **_REF, name="a")]
    keep_raw = change.pop("keep_raw", False)
    transport = change.pop("transport", _ON_NATIVE)
    choice = choose_loop(_spec(instances, **change), instances, transport, keep_raw, environ={})
    assert choice.name == PYTHON
    assert reason in choice.reason


def test_paginated_lists_and_changing_requests_keep_the_python_loop(
    kperf_request_type: Callable[..., RequestType],
) -> None:
    get = kperf_request_type("staleGet", **_REF, name="a")
    walk = kperf_request_type("quorumList", **_REF, limit=5, paginate=True)
    choice = choose_loop(_spec([get, walk]), [get, walk], _ON_NATIVE, False, environ={})
    assert choice == TransportChoice(PYTHON, "quorumList reads its answers in Python (pagination)")
    changing = _Changing({}, BuildContext())
    choice = choose_loop(_spec([get, changing]), [get, changing], _ON_NATIVE, False, environ={})
    assert choice == TransportChoice(PYTHON, "thirdParty builds a new request each time")
    # an item without a share sends nothing: it does not keep the spec off the native loop
    spec = _spec([get, changing], [1, 0])
    choice = choose_loop(spec, [get, changing], _ON_NATIVE, False, environ={})
    assert choice.name == NATIVE


def test_kperf_native_loop_forces_one_or_says_why_it_cannot(
    kperf_request_type: Callable[..., RequestType],
) -> None:
    get = kperf_request_type("staleGet", **_REF, name="a")
    spec = _spec([get])
    forced = choose_loop(spec, [get], _ON_NATIVE, False, environ={"KPERF_NATIVE_LOOP": "python"})
    assert forced == TransportChoice(PYTHON, "KPERF_NATIVE_LOOP=python")
    open_loop = _spec([get], arrival="poisson", rate=5)
    with pytest.raises(ConfigError, match="KPERF_NATIVE_LOOP=native, but arrival poisson"):
        choose_loop(open_loop, [get], _ON_NATIVE, False, environ={"KPERF_NATIVE_LOOP": "native"})
    with pytest.raises(ConfigError, match="KPERF_NATIVE_LOOP='c': expected python, native"):
        choose_loop(spec, [get], _ON_NATIVE, False, environ={"KPERF_NATIVE_LOOP": "c"})


def _python_bucket(seconds: float) -> int:
    histogram = LatencyHistogram()
    return histogram.record(seconds)


def test_the_native_loop_buckets_every_latency_as_the_histogram_does() -> None:
    kperf_native = pytest.importorskip("kperf_native")
    rng = random.Random(11)
    gamma = (1 + 0.005) / (1 - 0.005)
    values = [
        0.0, 1e-12, 1e-9, 2e-9, 1e-6, 1e-3, 1.0, 60.0, 1e4, math.nextafter(1e-9, 1.0),
        *(rng.lognormvariate(-7, 2) for _ in range(80_000)),  # 1 µs .. 1 s mostly
        *(rng.uniform(0, 0.1) for _ in range(20_000)),
    ]  # fmt: skip
    # values on (and next to) bucket edges, where rounding would show first
    for index in range(-4200, 1900):
        edge = gamma**index
        values += [edge, math.nextafter(edge, 0.0), math.nextafter(edge, math.inf)]
    assert len(values) > 100_000
    mismatched = [v for v in values if kperf_native.bucket_index(v) != _python_bucket(v)]
    assert mismatched == []


def test_a_batch_merges_as_recording_each_latency_would() -> None:
    rng = random.Random(5)
    latencies = [rng.lognormvariate(-6, 1) for _ in range(500)]
    one_by_one = CompletionRecorder(keep_raw=False)
    batched = CompletionRecorder(keep_raw=False)
    for recorder in (one_by_one, batched):
        recorder.start_series(0.0)
    for value in latencies:
        one_by_one.success("GET /x", value, 10)
    # two batches, as the native loop hands them over (the histogram's buckets, counted there)
    for part in (latencies[:200], latencies[200:]):
        counted = LatencyHistogram.of(part)
        batch = LatencyHistogram.of_counts(
            counted.buckets, counted.count, math.fsum(part), min(part), max(part)
        )
        batched.successes("GET /x", batch, 10 * len(part))
    for recorder in (one_by_one, batched):
        recorder.close_period(1.0)
    expected, got = one_by_one.stats["GET /x"], batched.stats["GET /x"]
    assert got.latencies.buckets == expected.latencies.buckets
    assert (got.succeeded, got.bytes, got.failed) == (500, 5000, 0)
    assert (got.latencies.min, got.latencies.max) == (min(latencies), max(latencies))
    assert got.latencies.count == expected.latencies.count == 500
    assert got.latencies.sum == pytest.approx(expected.latencies.sum, rel=1e-12)
    window, expected_window = batched.series.keys["GET /x"], one_by_one.series.keys["GET /x"]
    assert window.buckets == expected_window.buckets
    assert window.succeeded == [500]
