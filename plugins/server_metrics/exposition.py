"""The Prometheus text exposition format, as far as the server's view needs it: parse the samples
of a few metric families, and take the difference of two scrapes.

A full ``/metrics`` of a kube-apiserver is 1-2 MB and ~10,000 samples; only the families asked for
are parsed (a line is skipped on its name before its labels are read).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping

#: A series: its labels as sorted (name, value) pairs.
Labels = tuple[tuple[str, str], ...]

_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


class ExpositionError(ValueError):
    """A line of the exposition that is not a sample of the format."""


class CounterReset(ValueError):
    """A counter went down between two scrapes: the server restarted during the run."""


def _unescape(value: str) -> str:
    if "\\" not in value:  # nearly every value: no regular expression to run
        return value
    return re.sub(r'\\[\\"n]', lambda m: _ESCAPES[m.group(0)], value)


@functools.lru_cache(maxsize=1 << 16)
def _labels(text: str) -> Labels:
    """The labels between the braces; cached: the scrapes before and after a run (and a
    histogram's ``_sum`` and ``_count``) repeat the same label texts."""
    pairs = []
    position = 0
    while position < len(text):
        match = _LABEL.match(text, position)
        if match is None:
            raise ExpositionError(f"malformed labels {text[:200]!r}")
        pairs.append((match.group(1), _unescape(match.group(2))))
        position = match.end()
    return tuple(sorted(pairs))


class Scrape:
    """The samples of the requested families in one ``/metrics`` text.

    ``samples[name][labels] = value`` with ``name`` the sample name (``…_bucket``, ``…_sum``,
    ``…_count`` for histograms); ``text`` is those samples' lines as read (what parsing it again
    gives back: a snapshot to keep).
    """

    def __init__(self, samples: Mapping[str, Mapping[Labels, float]], text: str = "") -> None:
        self.samples = samples
        self.text = text

    @classmethod
    def parse(cls, text: str, families: Iterable[str]) -> Scrape:
        wanted = set()
        for family in families:
            wanted |= {family, f"{family}_bucket", f"{family}_sum", f"{family}_count"}
        samples: dict[str, dict[Labels, float]] = {}
        kept = []
        for line in text.splitlines():
            if not line or line[0] == "#":
                continue
            ends = [i for i in (line.find("{"), line.find(" ")) if i >= 0]
            if not ends:
                raise ExpositionError(f"a sample without a value: {line[:200]!r}")
            end = min(ends)
            name = line[:end]
            if name not in wanted:
                continue
            if line[end] == "{":
                brace = end
                close = line.rfind("}")
                if close < brace:
                    raise ExpositionError(f"unterminated labels in {line[:200]!r}")
                labels = _labels(line[brace + 1 : close])
                rest = line[close + 1 :].split()
            else:
                labels = ()
                rest = line[end:].split()
            if not rest:
                raise ExpositionError(f"a sample without a value: {line[:200]!r}")
            try:
                value = float(rest[0])  # "+Inf", "NaN" included; a timestamp may follow
            except ValueError:
                raise ExpositionError(f"not a number in {line[:200]!r}") from None
            samples.setdefault(name, {})[labels] = value
            kept.append(line)
        return cls(samples, "\n".join(kept))

    def has(self, family: str) -> bool:
        return any(name in self.samples for name in (family, f"{family}_bucket", f"{family}_count"))


def counter_delta(before: Scrape, after: Scrape, name: str) -> dict[Labels, float]:
    """``after - before`` per series with a change; a series born during the run started at 0."""
    old = before.samples.get(name, {})
    deltas = {}
    for labels, value in after.samples.get(name, {}).items():
        change = value - old.get(labels, 0.0)
        if change < 0:
            raise CounterReset(f"{name} went down from {old[labels]:g} to {value:g}")
        if change:
            deltas[labels] = change
    return deltas


#: One histogram series' growth: bucket bound → count (not cumulative), count, sum.
HistogramDelta = tuple[dict[float, int], int, float]


def histogram_delta(before: Scrape, after: Scrape, family: str) -> dict[Labels, HistogramDelta]:
    """Per series (labels without ``le``) with new observations: how many fell in each bucket."""
    counts = counter_delta(before, after, f"{family}_count")
    sums = {
        labels: value
        for labels, value in after.samples.get(f"{family}_sum", {}).items()
        if labels in counts
    }
    old_sums = before.samples.get(f"{family}_sum", {})
    cumulative: dict[Labels, dict[float, float]] = {}
    for labels, change in counter_delta(before, after, f"{family}_bucket").items():
        bound = float(dict(labels)["le"])
        series = tuple(pair for pair in labels if pair[0] != "le")
        cumulative.setdefault(series, {})[bound] = change
    deltas = {}
    for series, count in counts.items():
        buckets: dict[float, int] = {}
        below = 0.0
        for bound, total in sorted(cumulative.get(series, {}).items()):
            if total > below:
                buckets[bound] = round(total - below)
                below = total
        deltas[series] = (buckets, round(count), sums.get(series, 0.0) - old_sums.get(series, 0.0))
    return deltas


def merge_buckets(parts: Iterable[dict[float, int]]) -> dict[float, int]:
    """Bucket counts of several series of one histogram family (same bounds) added up."""
    merged: dict[float, int] = {}
    for part in parts:
        for bound, n in part.items():
            merged[bound] = merged.get(bound, 0) + n
    return merged


def bucket_pairs(buckets: Mapping[float, int]) -> tuple[tuple[float | None, int], ...]:
    """Buckets in bound order, ``+Inf`` as None (JSON has no infinity)."""
    return tuple(
        (None if math.isinf(bound) else bound, n) for bound, n in sorted(buckets.items()) if n
    )
