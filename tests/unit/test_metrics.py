"""Latency histograms (accuracy, exact merge, serialisation) and error classification."""

from __future__ import annotations

import json
import math
import random

import pytest

from kperf_core.metrics import (
    PERCENTILES,
    RELATIVE_ACCURACY,
    KeyStats,
    LatencyHistogram,
    http_error_key,
    transport_error_key,
)

# Floating-point slack on top of the documented bound (the bucket edges are computed with logs).
BOUND = RELATIVE_ACCURACY * (1 + 1e-9)


def nearest_rank(samples: list[float], p: float) -> float:
    """Upstream's percentile: sort, index ceil(n*p) - 1 (clamped at 0); p=0 is the minimum."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(len(ordered) * p) - 1)]


def _uniform(rng: random.Random, n: int) -> list[float]:
    return [rng.uniform(0.001, 0.1) for _ in range(n)]


def _exponential(rng: random.Random, n: int) -> list[float]:
    return [rng.expovariate(1 / 0.02) + 1e-6 for _ in range(n)]


def _lognormal_100us_to_10s(rng: random.Random, n: int) -> list[float]:
    # median ~30 ms, sigma wide enough to touch both ends; clipped to [100 µs, 10 s].
    return [min(10.0, max(1e-4, rng.lognormvariate(math.log(0.03), 2.0))) for _ in range(n)]


def _log_uniform_100us_to_10s(rng: random.Random, n: int) -> list[float]:
    return [math.exp(rng.uniform(math.log(1e-4), math.log(10.0))) for _ in range(n)]


def _bimodal(rng: random.Random, n: int) -> list[float]:
    # watch-cache hits around 2 ms and etcd reads around 400 ms
    return [
        rng.gauss(0.002, 0.0002) if rng.random() < 0.9 else rng.gauss(0.4, 0.05) for _ in range(n)
    ]


def _few_repeated(rng: random.Random, n: int) -> list[float]:
    return [rng.choice([0.005, 0.01, 0.25]) for _ in range(n)]


DISTRIBUTIONS = {
    "uniform": _uniform,
    "exponential": _exponential,
    "lognormal-100us-10s": _lognormal_100us_to_10s,
    "log-uniform-100us-10s": _log_uniform_100us_to_10s,
    "bimodal": _bimodal,
    "few-repeated": _few_repeated,
}


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1000, 20_000])
@pytest.mark.parametrize("distribution", list(DISTRIBUTIONS))
def test_percentiles_within_half_a_percent_of_nearest_rank(distribution: str, n: int) -> None:
    samples = DISTRIBUTIONS[distribution](random.Random(20240501 + n), n)
    histogram = LatencyHistogram.of(samples)
    for p, value in histogram.percentiles():
        exact = nearest_rank(samples, p)
        assert abs(value - exact) <= BOUND * exact, (p, value, exact)


def test_percentile_pairs_are_upstreams_six() -> None:
    histogram = LatencyHistogram.of([0.1, 0.2, 0.3])
    assert [p for p, _ in histogram.percentiles()] == [0.0, 0.5, 0.9, 0.95, 0.99, 1.0]
    assert PERCENTILES == (0.0, 0.5, 0.9, 0.95, 0.99, 1.0)


def test_min_and_max_are_exact() -> None:
    samples = _lognormal_100us_to_10s(random.Random(3), 5000)
    histogram = LatencyHistogram.of(samples)
    assert histogram.quantile(0) == min(samples)
    assert histogram.quantile(1) == max(samples)
    assert histogram.percentiles()[0] == [0.0, min(samples)]
    assert histogram.percentiles()[-1] == [1.0, max(samples)]
    assert histogram.count == 5000
    assert histogram.sum == pytest.approx(sum(samples))


def test_single_sample_is_every_percentile() -> None:
    histogram = LatencyHistogram.of([0.0421])
    assert histogram.percentiles() == [[p, 0.0421] for p in PERCENTILES]


def test_upstream_utils_test_outliers_at_the_top() -> None:
    # metrics/utils_test.go style: 100 samples, mostly the same small value, a few outliers.
    samples = [0.001] * 95 + [0.5, 1.2, 3.0, 10.0, 0.002]
    random.Random(5).shuffle(samples)
    histogram = LatencyHistogram.of(samples)
    expected = [[0, 0.001], [0.5, 0.001], [0.9, 0.001], [0.95, 0.001], [0.99, 3.0], [1, 10.0]]
    for (p, value), (q, exact) in zip(histogram.percentiles(), expected, strict=True):
        assert p == q
        assert abs(value - exact) <= BOUND * exact, (p, value, exact)


def test_upstream_utils_test_mostly_zeros() -> None:
    # metrics/utils_test.go: 100 samples, mostly zeros, a few outliers; nearest-rank pairs.
    samples = [0.0] * 95 + [0.5, 1.2, 3.0, 10.0, 0.002]
    histogram = LatencyHistogram.of(samples)
    values = dict((p, v) for p, v in histogram.percentiles())
    assert values[0.0] == 0.0
    assert values[0.5] == 0.0
    assert values[0.9] == 0.0
    assert values[0.95] == 0.0
    assert abs(values[0.99] - 3.0) <= BOUND * 3.0
    assert values[1.0] == 10.0


def test_mostly_zeros_keeps_the_outliers_right() -> None:
    # The tail and the extremes stay right when most samples are zero.
    samples = [0.0] * 95 + [0.5, 1.2, 3.0, 10.0, 0.002]
    values = dict((p, v) for p, v in LatencyHistogram.of(samples).percentiles())
    assert values[0.0] == 0.0
    assert values[0.5] < 1e-6
    assert abs(values[0.99] - 3.0) <= BOUND * 3.0
    assert values[1.0] == 10.0


def test_empty_histogram_quantile_raises() -> None:
    with pytest.raises(ValueError, match="empty histogram"):
        LatencyHistogram().quantile(0.5)
    with pytest.raises(ValueError, match="empty histogram"):
        LatencyHistogram().percentiles()


# -------------------------------------------------------------------------------------------------
# Merge
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("distribution", list(DISTRIBUTIONS))
def test_merge_equals_histogram_of_concatenated_samples(distribution: str) -> None:
    rng = random.Random(77)
    first = DISTRIBUTIONS[distribution](rng, 3000)
    second = _lognormal_100us_to_10s(rng, 1700)
    merged = LatencyHistogram.of(first)
    merged.merge(LatencyHistogram.of(second))
    together = LatencyHistogram.of(first + second)
    assert merged.buckets == together.buckets
    assert merged.count == together.count == 4700
    assert merged.min == together.min == min(first + second)
    assert merged.max == together.max == max(first + second)
    assert merged.sum == pytest.approx(together.sum)
    assert merged.percentiles() == together.percentiles()


def test_merge_with_empty_histogram_changes_nothing() -> None:
    samples = _uniform(random.Random(9), 50)
    histogram = LatencyHistogram.of(samples)
    before = histogram.percentiles()
    histogram.merge(LatencyHistogram())
    assert histogram.percentiles() == before
    assert histogram.count == 50

    empty = LatencyHistogram()
    empty.merge(LatencyHistogram.of(samples))
    assert empty.percentiles() == before


def test_key_stats_merge_adds_counts_bytes_and_raw() -> None:
    a = KeyStats(keep_raw=True)
    b = KeyStats(keep_raw=True)
    for stats, values, ok, failed, nbytes in ((a, [0.1, 0.2], 2, 1, 100), (b, [0.3], 1, 4, 50)):
        for v in values:
            stats.latencies.record(v)
            stats.raw.append(v)
        stats.succeeded, stats.failed, stats.bytes = ok, failed, nbytes
    a.merge(b)
    assert (a.succeeded, a.failed, a.bytes) == (3, 5, 150)
    assert a.raw == [0.1, 0.2, 0.3]
    assert a.latencies.count == 3
    assert a.latencies.max == 0.3


def test_key_stats_without_raw_keeps_none() -> None:
    assert KeyStats().raw is None
    stats = KeyStats()
    stats.merge(KeyStats(keep_raw=True))
    assert stats.raw is None


# -------------------------------------------------------------------------------------------------
# Serialisation (histograms travel from runner pods to the runner-group server)
# -------------------------------------------------------------------------------------------------


def test_to_dict_from_dict_round_trip_through_json() -> None:
    samples = _lognormal_100us_to_10s(random.Random(11), 2500)
    histogram = LatencyHistogram.of(samples)
    data = json.loads(json.dumps(histogram.to_dict()))
    assert data["relativeAccuracy"] == RELATIVE_ACCURACY
    assert data["count"] == 2500
    assert data["min"] == min(samples)
    assert data["max"] == max(samples)
    assert sum(data["buckets"].values()) == 2500
    again = LatencyHistogram.from_dict(data)
    assert again.buckets == histogram.buckets
    assert (again.count, again.min, again.max) == (histogram.count, histogram.min, histogram.max)
    assert again.sum == pytest.approx(histogram.sum)
    assert again.percentiles() == histogram.percentiles()


def test_deserialised_histograms_merge_like_the_originals() -> None:
    rng = random.Random(12)
    first, second = _bimodal(rng, 800), _exponential(rng, 900)
    merged = LatencyHistogram.from_dict(
        json.loads(json.dumps(LatencyHistogram.of(first).to_dict()))
    )
    merged.merge(LatencyHistogram.from_dict(LatencyHistogram.of(second).to_dict()))
    assert merged.percentiles() == LatencyHistogram.of(first + second).percentiles()


def test_empty_histogram_round_trip() -> None:
    data = LatencyHistogram().to_dict()
    assert (data["count"], data["min"], data["max"], data["buckets"]) == (0, None, None, {})
    again = LatencyHistogram.from_dict(json.loads(json.dumps(data)))
    assert again.count == 0
    again.record(0.5)
    assert again.percentiles() == [[p, 0.5] for p in PERCENTILES]


@pytest.mark.parametrize("accuracy", [0.01, 0.001, None])
def test_from_dict_refuses_another_accuracy(accuracy: float | None) -> None:
    data = LatencyHistogram.of([0.1]).to_dict()
    data["relativeAccuracy"] = accuracy
    with pytest.raises(ValueError, match=f"relative accuracy {accuracy} cannot merge with 0.005"):
        LatencyHistogram.from_dict(data)


# -------------------------------------------------------------------------------------------------
# Error classification
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 404, 409, 429, 500, 503, 504])
def test_http_error_key(status: int) -> None:
    assert http_error_key(status) == f"http/{status}"


@pytest.mark.parametrize(
    ("errno", "message", "expected"),
    [
        (7, "Failed to connect to 10.0.0.1 port 6443: Connection refused",
         "connection/connection refused"),
        (28, "Operation timed out after 60001 milliseconds with 0 bytes received",
         "connection/timeout"),
        (35, "OpenSSL SSL_connect: SSL_ERROR_SYSCALL in connection to 10.0.0.1:6443",
         "connection/TLS handshake error"),
        (52, "Empty reply from server", "connection/EOF"),
        (18, "transfer closed with 1234 bytes remaining to read", "connection/unexpected EOF"),
        (56, "Recv failure: Connection reset by peer", "connection/connection reset by peer"),
        (56, "OpenSSL SSL_read: error:0A000126:SSL routines::unexpected eof while reading",
         "connection/receive error"),
        (16, "HTTP/2 stream 5 was not closed cleanly: CANCEL (err 8)", "http2-protocol/CANCEL"),
        (92, "HTTP/2 stream 1 was not closed cleanly: CANCEL (err 8)", "http2-protocol/CANCEL"),
        (92, "HTTP/2 stream 3 was not closed cleanly: REFUSED_STREAM (err 7)",
         "http2-protocol/REFUSED_STREAM"),
        (92, "HTTP/2 stream 3 was not closed cleanly: PROTOCOL_ERROR (err 1)",
         "http2-protocol/PROTOCOL_ERROR"),
        (92, "HTTP/2 stream 9 was reset (err 10)", "http2-protocol/CONNECT_ERROR"),
        (92, "stream went away", "http2-protocol/stream error"),
        (16, "Error in the HTTP2 framing layer", "http2-protocol/HTTP/2 framing error"),
        (999, "something new in libcurl", "unknown/curl error 999"),
        (3, "URL using bad/illegal format or missing URL", "unknown/curl error 3"),
    ],
)  # fmt: skip
def test_transport_error_key(errno: int, message: str, expected: str) -> None:
    assert transport_error_key(errno, message) == expected


def test_transport_error_messages_have_bounded_cardinality() -> None:
    # Two different URLs / byte counts / stream ids must land on the same key (never a URL).
    assert transport_error_key(7, "Failed to connect to a port 1") == transport_error_key(
        7, "Failed to connect to b port 2"
    )
    assert transport_error_key(999, "https://10.0.0.1/api/v1/pods") == transport_error_key(
        999, "https://10.0.0.2/api/v1/nodes"
    )
