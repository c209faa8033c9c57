"""Time series of a spec: per-window successes, failures and latency histograms of each key.

Windows are ``windowSeconds`` wide and counted from the spec's start (window ``i`` covers
``[i * w, (i + 1) * w)``). Memory does not grow with the run's length: at most
:data:`MAX_WINDOWS` windows are kept, and when a run outgrows them adjacent windows merge pairwise
and the width doubles — a 10-hour run keeps as many windows as a 10-minute one, only wider.

A window's latencies are a coarse version of :class:`~kperf_core.metrics.LatencyHistogram`:
:data:`COARSEN` adjacent buckets of the run's histogram make one bucket of a window's, so a window
is a few dozen counts and its percentiles are within :data:`WINDOW_ACCURACY` (5 %) relative error.
The mapping is the same log mapping with ``gamma ** COARSEN``, so windows of several engine
processes or runners (and adjacent windows) merge exactly by adding counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from kperf_core.metrics import RELATIVE_ACCURACY

#: Buckets of the run's histogram that make one bucket of a window's.
COARSEN = 10
_FINE_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_GAMMA = _FINE_GAMMA**COARSEN
#: Relative error of a window's percentiles.
WINDOW_ACCURACY = (_GAMMA - 1) / (_GAMMA + 1)
#: Windows kept at most; more merge pairwise into windows twice as wide.
MAX_WINDOWS = 600
#: Width of a window until a run outgrows :data:`MAX_WINDOWS`.
BASE_WINDOW_SECONDS = 1.0


def coarse_index(fine_index: int) -> int:
    """The window bucket of a bucket of :class:`~kperf_core.metrics.LatencyHistogram`: fine
    bucket ``i`` covers ``(g**(i-1), g**i]``, window bucket ``j`` covers ``(G**(j-1), G**j]`` with
    ``G = g**COARSEN``, so ``j = ceil(i / COARSEN)``."""
    return -(-fine_index // COARSEN)


def bucket_value(index: int) -> float:
    """The value a window bucket stands for (within :data:`WINDOW_ACCURACY` of its members)."""
    return 2 * _GAMMA**index / (_GAMMA + 1)


def bucket_quantile(buckets: Mapping[int, int], q: float) -> float | None:
    """Nearest-rank quantile of window buckets; None when they are empty."""
    count = sum(buckets.values())
    if count == 0:
        return None
    rank = max(1, math.ceil(count * q))
    seen = 0
    for index in sorted(buckets):
        seen += buckets[index]
        if seen >= rank:
            return bucket_value(index)
    return None  # unreachable: the ranks add up to count


def _add_buckets(into: dict[int, int], other: Mapping[int, int]) -> None:
    for index, n in other.items():
        into[index] = into.get(index, 0) + n


class KeySeries:
    """One key's windows: successes, failures and latency buckets (of the successes)."""

    __slots__ = ("buckets", "failed", "succeeded")

    def __init__(self) -> None:
        self.succeeded: list[int] = []
        self.failed: list[int] = []
        self.buckets: list[dict[int, int]] = []

    def _reach(self, length: int) -> None:
        missing = length - len(self.succeeded)
        if missing > 0:
            self.succeeded.extend([0] * missing)
            self.failed.extend([0] * missing)
            self.buckets.extend({} for _ in range(missing))

    def add(self, index: int, succeeded: int, failed: int, buckets: Mapping[int, int]) -> None:
        self._reach(index + 1)
        self.succeeded[index] += succeeded
        self.failed[index] += failed
        _add_buckets(self.buckets[index], buckets)

    def fold_last(self) -> None:
        """Add the last window to the one before it, and drop it."""
        last = len(self.succeeded) - 1
        self.add(last - 1, self.succeeded[last], self.failed[last], self.buckets[last])
        for column in (self.succeeded, self.failed, self.buckets):
            column.pop()

    def merge(self, other: KeySeries) -> None:
        """Add ``other``'s windows (of the same width) window by window."""
        for index in range(len(other.succeeded)):
            self.add(index, other.succeeded[index], other.failed[index], other.buckets[index])

    def _halve(self) -> None:
        """Merge windows pairwise (the width doubles)."""
        fresh = KeySeries()
        for index in range(len(self.succeeded)):
            fresh.add(index // 2, self.succeeded[index], self.failed[index], self.buckets[index])
        self.succeeded, self.failed, self.buckets = fresh.succeeded, fresh.failed, fresh.buckets

    def quantile(self, window: int, q: float) -> float | None:
        """Latency (seconds) at quantile ``q`` of window ``window``'s successes; None if none."""
        if window >= len(self.buckets):
            return None
        return bucket_quantile(self.buckets[window], q)


class TimeSeries:
    """Every key's windows of one spec, in at most ``max_windows`` windows."""

    __slots__ = ("keys", "max_windows", "window_seconds", "windows")

    def __init__(
        self, window_seconds: float = BASE_WINDOW_SECONDS, max_windows: int = MAX_WINDOWS
    ) -> None:
        self.window_seconds = window_seconds
        self.max_windows = max_windows
        #: windows the series spans (every key's lists are padded to it when read)
        self.windows = 0
        self.keys: dict[str, KeySeries] = {}

    def index_at(self, seconds: float) -> int:
        """The window holding ``seconds`` after the start, widening windows until it fits."""
        while int(seconds / self.window_seconds) >= self.max_windows:
            self.widen()
        return int(seconds / self.window_seconds)

    def reach(self, seconds: float) -> None:
        """The series spans at least up to ``seconds`` (windows without completions count 0)."""
        self.windows = max(self.windows, self.index_at(seconds) + 1)

    def add(
        self, seconds: float, key: str, succeeded: int, failed: int, buckets: Mapping[int, int]
    ) -> None:
        """Completions of ``key`` in the window holding ``seconds`` after the start."""
        index = self.index_at(seconds)
        self.windows = max(self.windows, index + 1)
        series = self.keys.get(key)
        if series is None:
            series = self.keys[key] = KeySeries()
        series.add(index, succeeded, failed, buckets)

    def widen(self) -> None:
        """Merge adjacent windows pairwise: half as many, twice as wide."""
        for series in self.keys.values():
            series._halve()
        self.windows = (self.windows + 1) // 2
        self.window_seconds *= 2

    def merge(self, other: TimeSeries) -> None:
        """Add ``other`` (another process's or runner's windows of the same spec), exactly: the
        narrower of the two is widened to the other's width first."""
        other = other.copy()
        while other.window_seconds < self.window_seconds:
            other.widen()
        while self.window_seconds < other.window_seconds:
            self.widen()
        for key, series in other.keys.items():
            self.keys.setdefault(key, KeySeries()).merge(series)
        self.windows = max(self.windows, other.windows)
        while self.windows > self.max_windows:
            self.widen()

    def copy(self) -> TimeSeries:
        return TimeSeries.from_dict(self.to_dict())

    def overall(self) -> KeySeries:
        """Every key's windows added up (the spec's own series)."""
        total = KeySeries()
        total._reach(self.windows)
        for series in self.keys.values():
            total.merge(series)
        return total

    def renamed(self, name: Callable[[str], str]) -> TimeSeries:
        """The same windows under other key names (the report's full URLs)."""
        renamed = TimeSeries(self.window_seconds, self.max_windows)
        renamed.windows = self.windows
        for key, series in self.keys.items():
            renamed.keys.setdefault(name(key), KeySeries()).merge(series)
        return renamed

    def spans(self, duration_seconds: float) -> list[tuple[float, float]]:
        """Each window's start and the seconds of it the spec covered: the last window ends
        with the spec (a window that began at the very end, while requests drained, counts
        1 % of its width, so that a rate stays finite)."""
        width = self.window_seconds
        starts = [i * width for i in range(self.windows)]
        return [(s, max(min(width, duration_seconds - s), width / 100)) for s in starts]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TimeSeries) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable

    # -- the report's ``timeSeries`` -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        def column(values: list[Any], empty: Any) -> list[Any]:
            return values + [empty] * (self.windows - len(values))

        return {
            "windowSeconds": self.window_seconds,
            "windows": self.windows,
            "relativeAccuracy": WINDOW_ACCURACY,
            "byURL": {
                key: {
                    "succeeded": column(series.succeeded, 0),
                    "failed": column(series.failed, 0),
                    "latencyBuckets": column(
                        [{str(i): n for i, n in sorted(b.items())} for b in series.buckets], {}
                    ),
                }
                for key, series in sorted(self.keys.items())
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TimeSeries:
        """Read ``timeSeries``; a wrong shape raises ValueError naming what is wrong."""
        if not math.isclose(float(data["relativeAccuracy"]), WINDOW_ACCURACY, rel_tol=1e-9):
            raise ValueError(
                f"time series with relative accuracy {data['relativeAccuracy']} cannot merge "
                f"with {WINDOW_ACCURACY}"
            )
        width = float(data["windowSeconds"])
        windows = int(data["windows"])
        if width <= 0 or windows < 0:
            raise ValueError("windowSeconds must be > 0 and windows >= 0")
        series = cls(width, max(MAX_WINDOWS, windows))
        series.windows = windows
        for key, columns in data["byURL"].items():
            one = series.keys[key] = KeySeries()
            one.succeeded = [int(n) for n in columns["succeeded"]]
            one.failed = [int(n) for n in columns["failed"]]
            one.buckets = [
                {int(i): int(n) for i, n in window.items()} for window in columns["latencyBuckets"]
            ]
            if not len(one.succeeded) == len(one.failed) == len(one.buckets) == windows:
                raise ValueError(f"{key}: every column must have {windows} windows")
        return series
