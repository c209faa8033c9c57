"""Measurements: mergeable latency histograms, per-key request statistics, error classes.

The histogram is log-bucketed (the DDSketch mapping): a value ``v`` falls in bucket
``ceil(log(v) / log(gamma))`` with ``gamma = (1 + a) / (1 - a)``, and a bucket is reported as
``2 * gamma**i / (gamma + 1)``, which is within ``a`` relative error of every value in it. With
``a = 0.005`` every reported percentile is within 0.5 % of the true sample at that rank, memory is
bounded by the covered range (about 2,100 buckets from 1 µs to 1,000 s, sparse in practice), and two
histograms merge exactly by adding counts — across specs, processes and runner pods. The exact
minimum and maximum are kept alongside, so p0 and p100 are exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

#: Relative accuracy of reported percentiles.
RELATIVE_ACCURACY = 0.005
_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(_GAMMA)
#: Values at or below this (seconds) share one bucket; latencies are never this small.
_MIN_VALUE = 1e-9
#: The floor bucket: every value ≤ 1 ns, zeros included; its estimate is the exact minimum.
_FLOOR_INDEX = math.ceil(math.log(_MIN_VALUE) / _LOG_GAMMA)

#: Upstream's percentile set: [[0, min], [0.5, p50], …, [1, max]].
PERCENTILES = (0.0, 0.5, 0.9, 0.95, 0.99, 1.0)


class LatencyHistogram:
    """Latencies in seconds; bounded memory, ≤ 0.5 % relative error, exact merge."""

    __slots__ = ("buckets", "count", "max", "min", "sum")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    def record(self, seconds: float) -> int:
        """Count one value; returns its bucket's index (a time series' window counts it too)."""
        index = math.ceil(math.log(max(seconds, _MIN_VALUE)) / _LOG_GAMMA)
        buckets = self.buckets
        buckets[index] = buckets.get(index, 0) + 1
        self.count += 1
        self.sum += seconds
        if seconds < self.min:
            self.min = seconds
        if seconds > self.max:
            self.max = seconds
        return index

    @classmethod
    def of_counts(
        cls, buckets: Mapping[int, int], count: int, total: float, low: float, high: float
    ) -> LatencyHistogram:
        """A histogram counted elsewhere with :meth:`record`'s buckets (the native loop's)."""
        h = cls()
        h.buckets = dict(buckets)
        h.count = count
        h.sum = total
        h.min = low
        h.max = high
        return h

    def merge(self, other: LatencyHistogram) -> None:
        for index, n in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + n
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def quantile(self, q: float) -> float:
        """Nearest-rank quantile (upstream's: rank ``ceil(n*q)``, at least 1); q=0/1 are exact."""
        if self.count == 0:
            raise ValueError("empty histogram")
        if q <= 0:
            return self.min
        if q >= 1:
            return self.max
        rank = max(1, math.ceil(self.count * q))
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                if index <= _FLOOR_INDEX:
                    return self.min
                value = 2 * _GAMMA**index / (_GAMMA + 1)
                # The bucket estimate may step outside the observed range at the edges.
                return min(max(value, self.min), self.max)
        return self.max

    def percentiles(self) -> list[list[float]]:
        """Upstream's ``[[p, seconds], …]`` pairs."""
        return [[p, self.quantile(p)] for p in PERCENTILES]

    # -- serialisation: histograms travel between runners and the runner-group server ----------

    def to_dict(self) -> dict[str, Any]:
        return {
            "relativeAccuracy": RELATIVE_ACCURACY,
            "count": self.count,
            "sum": self.sum,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
            "buckets": {str(k): v for k, v in sorted(self.buckets.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyHistogram:
        if data.get("relativeAccuracy") != RELATIVE_ACCURACY:
            raise ValueError(
                f"histogram with relative accuracy {data.get('relativeAccuracy')} cannot merge "
                f"with {RELATIVE_ACCURACY}"
            )
        h = cls()
        h.buckets = {int(k): int(v) for k, v in data["buckets"].items()}
        h.count = int(data["count"])
        h.sum = float(data["sum"])
        if h.count:
            h.min = float(data["min"])
            h.max = float(data["max"])
        return h

    @classmethod
    def of(cls, values: Iterable[float]) -> LatencyHistogram:
        h = cls()
        for v in values:
            h.record(v)
        return h


class KeyStats:
    """Everything measured for one metrics key (``"LIST /api/v1/pods?…"``)."""

    __slots__ = ("bytes", "failed", "latencies", "raw", "succeeded")

    def __init__(self, keep_raw: bool = False) -> None:
        self.latencies = LatencyHistogram()
        self.succeeded = 0
        self.failed = 0
        self.bytes = 0
        self.raw: list[float] | None = [] if keep_raw else None

    def merge(self, other: KeyStats) -> None:
        self.latencies.merge(other.latencies)
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.bytes += other.bytes
        if self.raw is not None and other.raw is not None:
            self.raw.extend(other.raw)


# -------------------------------------------------------------------------------------------------
# Error classes: upstream's four types, with messages of bounded cardinality (never a URL).
# -------------------------------------------------------------------------------------------------

HTTP = "http"
HTTP2 = "http2-protocol"
CONNECTION = "connection"
UNKNOWN = "unknown"

# libcurl error numbers (CURLE_*) that kperf names; stable across libcurl versions.
_CURL_ERRORS: dict[int, tuple[str, str]] = {
    6: (CONNECTION, "could not resolve host"),
    7: (CONNECTION, "connection refused"),
    16: (HTTP2, "HTTP/2 framing error"),
    18: (CONNECTION, "unexpected EOF"),
    28: (CONNECTION, "timeout"),
    35: (CONNECTION, "TLS handshake error"),
    52: (CONNECTION, "EOF"),
    55: (CONNECTION, "send error"),
    56: (CONNECTION, "receive error"),
    60: (CONNECTION, "TLS certificate verification failed"),
    92: (HTTP2, "stream error"),
}

# RFC 7540 §7 error code names, as Go's http2 package prints them.
_HTTP2_CODES = {
    0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
    4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM",
    8: "CANCEL", 9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR", 11: "ENHANCE_YOUR_CALM",
    12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED",
}  # fmt: skip


def http_error_key(status: int) -> str:
    return f"{HTTP}/{status}"


def transport_error_key(curl_errno: int, message: str) -> str:
    """Classify a libcurl failure into ``<type>/<message>`` with a bounded set of messages."""
    kind, text = _CURL_ERRORS.get(curl_errno, (UNKNOWN, f"curl error {curl_errno}"))
    lowered = message.lower()
    if curl_errno == 56 and "reset" in lowered:
        text = "connection reset by peer"
    elif kind == HTTP2:
        # libcurl reports e.g. "HTTP/2 stream 5 was not closed cleanly: CANCEL (err 8)".
        for code, name in _HTTP2_CODES.items():
            if f"(err {code})" in lowered or name.lower() in lowered:
                text = name
                break
    return f"{kind}/{text}"
