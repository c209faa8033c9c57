"""What a spec measured: per-key statistics, error classes, and the requests outside the load.

:class:`CompletionRecorder` is what the spec runner writes each finished request into; it knows
nothing of libcurl or pacing. :class:`OutsideLoad` counts the requests kperf sends that the
load's counts do not (a ``put``'s preparatory LIST, ``postDel``'s cleanup DELETEs, retried
attempts, follow-up pages), by purpose, key and status code, so that the report and that section
add up to what the API server counted.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from kperf_core.metrics import KeyStats, LatencyHistogram
from kperf_core.time_series import TimeSeries, coarse_index

#: ``connections`` figures that add up over engine processes and runners; the others (streams
#: per connection, seconds to establish) do not: the largest is kept.
_SUMMED_CONNECTIONS = ("opened", "limit", "sessions", "planned")


class OutsideLoad:
    """Requests sent beside the measured ones: ``{purpose: {key: {status: count}}}``.

    Purposes: ``prepare`` and ``cleanup`` (a request type's own set-up and tidying),
    ``retriedAttempts`` (an answer that was retried: the retry is the measured request),
    ``followUpPages`` (pages after the first of a paginated LIST, measured with the first).
    Status ``0`` stands for a request that got no HTTP answer.
    """

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, collections.Counter[int]]] = {}

    def add(self, purpose: str, key: str, status: int) -> None:
        self.counts.setdefault(purpose, {}).setdefault(key, collections.Counter())[status] += 1

    def merge(self, other: OutsideLoad) -> None:
        for purpose, keys in other.counts.items():
            for key, statuses in keys.items():
                self.counts.setdefault(purpose, {}).setdefault(key, collections.Counter()).update(
                    statuses
                )

    @property
    def total(self) -> int:
        return sum(sum(s.values()) for keys in self.counts.values() for s in keys.values())


@attrs.frozen
class Progress:
    """A spec's figures so far, for a live line: what ``RunSettings.progress`` receives about once
    a second (in the parent, the sum of every engine process's with ``--workers``)."""

    elapsed: float
    sent: int
    #: the load's requests that ended (successes and failures; background sessions excluded)
    completed: int
    #: every failure so far, background sessions' included (as the report's ``failed``)
    failed: int
    #: latencies of the successes so far
    latencies: LatencyHistogram
    #: the spec's limits (0: none), for the time remaining
    duration: float = 0.0
    total: int = 0
    #: engine processes whose figures these are
    workers: int = 1
    #: the spec's index in the profile, and how many specs it has
    spec: int = 0
    specs: int = 1

    @classmethod
    def combined(cls, parts: Sequence[Progress]) -> Progress:
        """Several engine processes' figures of the same spec, added up."""
        latencies = LatencyHistogram()
        for part in parts:
            latencies.merge(part.latencies)
        return cls(
            elapsed=max(p.elapsed for p in parts),
            sent=sum(p.sent for p in parts),
            completed=sum(p.completed for p in parts),
            failed=sum(p.failed for p in parts),
            latencies=latencies,
            duration=max(p.duration for p in parts),
            total=sum(p.total for p in parts),
            workers=sum(p.workers for p in parts),
            spec=parts[0].spec,
            specs=parts[0].specs,
        )

    def line(self) -> str:
        """``12.0s of 30s  sent 1200  100.0 req/s  p50 3.10 ms  p99 9.80 ms  0 errors``"""
        rate = self.completed / self.elapsed if self.elapsed > 0 else 0.0
        remaining = math.inf
        if self.duration > 0:
            remaining = max(0.0, self.duration - self.elapsed)
        if self.total > 0 and rate > 0:
            remaining = min(remaining, max(0, self.total - self.completed) / rate)
        parts = [f"spec {self.spec + 1}/{self.specs}"] if self.specs > 1 else []
        parts.append(f"{self.elapsed:.0f}s elapsed")
        if remaining < math.inf:
            parts.append(f"~{remaining:.0f}s left")
        parts += [f"sent {self.sent}", f"{rate:.1f} req/s"]
        if self.latencies.count:
            parts.append(f"p50 {self.latencies.quantile(0.5) * 1000:.2f} ms")
            parts.append(f"p99 {self.latencies.quantile(0.99) * 1000:.2f} ms")
        parts.append(f"{self.failed} errors")
        if self.workers > 1:
            parts.append(f"{self.workers} workers")
        return "  ".join(parts)


class _KeyRecord(KeyStats):
    """A key's statistics while it is recorded, with the run histogram's buckets counted in the
    current time-series window (what :meth:`CompletionRecorder.close_period` coarsens)."""

    __slots__ = ("window",)

    def __init__(self, keep_raw: bool) -> None:
        super().__init__(keep_raw)
        self.window: dict[int, int] = {}


class CompletionRecorder:
    """Per-key statistics and error classes of one spec (load and background sessions)."""

    def __init__(self, keep_raw: bool) -> None:
        self.keep_raw = keep_raw
        self.stats: dict[str, _KeyRecord] = {}
        self.errors: collections.Counter[str] = collections.Counter()
        self.raw_errors: list[dict[str, Any]] | None = [] if keep_raw else None
        self.outside = OutsideLoad()
        self.series = TimeSeries()
        #: when the time series' windows start (the load's start), and the current period's
        self._series_start = 0.0
        self._period_start = 0.0
        #: each key's (succeeded, failed) when the last period ended
        self._baseline: dict[str, tuple[int, int]] = {}

    def start_series(self, start: float) -> None:
        """The time series' windows count from ``start`` (``time.perf_counter()``)."""
        self._series_start = self._period_start = start

    def close_period(self, now: float) -> None:
        """What completed since the last call goes to the window where that period began.

        Called about once a second from the spec's loop. :meth:`success` counts each latency's
        bucket in its key's ``window`` too (a dict increment: bucket-by-bucket comparison with
        the previous period's histogram here would cost more, a key's histogram has hundreds of
        buckets); this coarsens those few into the series and starts the next window. A period
        spans one poll of the loop past the window's end, so a completion may land one window
        late by at most that (≤ 50 ms)."""
        seconds = self._period_start - self._series_start
        series = self.series
        series.reach(max(0.0, now - self._series_start))
        baseline = self._baseline
        for key, stats in self.stats.items():
            was_succeeded, was_failed = baseline.get(key, (0, 0))
            if stats.succeeded == was_succeeded and stats.failed == was_failed:
                continue
            window: dict[int, int] = {}
            for index, n in stats.window.items():
                coarse = coarse_index(index)
                window[coarse] = window.get(coarse, 0) + n
            stats.window = {}
            series.add(
                seconds, key, stats.succeeded - was_succeeded, stats.failed - was_failed, window
            )
            baseline[key] = (stats.succeeded, stats.failed)
        self._period_start = now

    def progress(
        self, elapsed: float, sent: int, completed: int, limits: tuple[float, int]
    ) -> Progress:
        """The figures so far (merging every key's histogram: called about once a second)."""
        latencies = LatencyHistogram()
        failed = 0
        for stats in self.stats.values():
            latencies.merge(stats.latencies)
            failed += stats.failed
        return Progress(elapsed, sent, completed, failed, latencies, *limits)

    def key_stats(self) -> dict[str, KeyStats]:
        """Every key's statistics, for the spec's result."""
        return {key: stats for key, stats in self.stats.items()}

    def _stats(self, key: str) -> _KeyRecord:
        stats = self.stats.get(key)
        if stats is None:
            stats = self.stats[key] = _KeyRecord(self.keep_raw)
        return stats

    def success(self, key: str, latency: float, received: int) -> None:
        stats = self.stats.get(key)
        if stats is None:
            stats = self.stats[key] = _KeyRecord(self.keep_raw)
        index = stats.latencies.record(latency)
        window = stats.window
        window[index] = window.get(index, 0) + 1
        if stats.raw is not None:
            stats.raw.append(latency)
        stats.succeeded += 1
        stats.bytes += received

    def successes(self, key: str, latencies: LatencyHistogram, received: int) -> None:
        """Successes counted elsewhere (the native loop's batch): what :meth:`success` would
        have recorded of each, their buckets counted in the current window too. Raw latencies
        are not kept (the native loop does not run with ``keep_raw``)."""
        stats = self._stats(key)
        stats.latencies.merge(latencies)
        window = stats.window
        for index, n in latencies.buckets.items():
            window[index] = window.get(index, 0) + n
        stats.succeeded += latencies.count
        stats.bytes += received

    def failure(
        self, key: str, error_key: str, duration: float, status: int, received: int = 0
    ) -> None:
        """A request failed (after retries) with error class ``error_key``."""
        self.errors[error_key] += 1
        stats = self._stats(key)
        stats.failed += 1
        stats.bytes += received
        if self.raw_errors is not None:
            kind, _, message = error_key.partition("/")
            method, _, url = key.partition(" ")
            self.raw_errors.append(
                {
                    "method": method,
                    "url": url,
                    "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    "duration": duration,
                    "type": kind,
                    "code": status if kind == "http" else 0,
                    "message": "" if kind == "http" else message,
                }
            )


def merge_connections(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One part's ``connections`` figures of several processes side by side."""
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key in _SUMMED_CONNECTIONS:
                merged[key] = merged.get(key, 0) + value
            else:
                merged[key] = max(merged.get(key, value), value)
    return merged


def merge_facts(facts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A request type's facts from several processes: counts add up, histograms merge exactly,
    anything else (the item's index and type) is the first's."""
    merged: dict[str, Any] = {}
    for one in facts:
        for key, value in one.items():
            if key not in merged:
                merged[key] = _copy_fact(value)
            elif isinstance(value, LatencyHistogram):
                merged[key].merge(value)
            elif isinstance(value, Mapping):
                merged[key] = merge_facts([merged[key], value])
            elif isinstance(value, int | float) and not isinstance(value, bool) and key != "item":
                merged[key] += value
    return merged


def _copy_fact(value: Any) -> Any:
    if isinstance(value, LatencyHistogram):
        copy = LatencyHistogram()
        copy.merge(value)
        return copy
    if isinstance(value, Mapping):
        return merge_facts([value])
    return value
