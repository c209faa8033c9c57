"""What a spec measured: per-key statistics, error classes, and the requests outside the load.

:class:`CompletionRecorder` is what the spec runner writes each finished request into; it knows
nothing of libcurl or pacing. :class:`OutsideLoad` counts the requests kperf sends that the
load's counts do not (a ``put``'s preparatory LIST, ``postDel``'s cleanup DELETEs, retried
attempts, follow-up pages), by purpose, key and status code, so that the report and that section
add up to what the API server counted.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kperf_core.metrics import KeyStats, LatencyHistogram

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


class CompletionRecorder:
    """Per-key statistics and error classes of one spec (load and background sessions)."""

    def __init__(self, keep_raw: bool) -> None:
        self.keep_raw = keep_raw
        self.stats: dict[str, KeyStats] = {}
        self.errors: collections.Counter[str] = collections.Counter()
        self.raw_errors: list[dict[str, Any]] | None = [] if keep_raw else None
        self.outside = OutsideLoad()

    def _stats(self, key: str) -> KeyStats:
        stats = self.stats.get(key)
        if stats is None:
            stats = self.stats[key] = KeyStats(self.keep_raw)
        return stats

    def success(self, key: str, latency: float, received: int) -> None:
        stats = self.stats.get(key)
        if stats is None:
            stats = self.stats[key] = KeyStats(self.keep_raw)
        stats.latencies.record(latency)
        if stats.raw is not None:
            stats.raw.append(latency)
        stats.succeeded += 1
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
