"""Compare two runs key by key: did latency, throughput or errors regress beyond a budget?

A change counts as a regression only when it is both **larger than the budget** (relative, e.g.
10 %) and **statistically significant** (one-sided p < :data:`ALPHA`), so that a re-run of the same
load on a noisy machine stays quiet while a real slowdown is found:

* median (p50) — Mann-Whitney U test computed from the two histograms. It needs no assumption about
  the shape of latency distributions (skewed, multi-modal) and works on ranks, which histograms
  give exactly: both runs share one bucket mapping, so a bucket's values are ties with a known
  mid-rank (values within one 1 %-wide bucket count as equal; the tie-corrected variance accounts
  for it). The normal approximation is used; runs have hundreds of samples or more.
* tail (p99) — a U test barely sees a tail that moves alone, so the tail is tested on its own: the
  share of new calls slower than the base run's p99 bucket against the base's own share (1 %), a
  one-sided two-proportion z-test.
* errors — the error rates of the two runs, the same two-proportion test.
* throughput — successful calls per second of load; one figure per run, so only the budget applies.

When both reports carry the server's view, the same figures are compared for the server's rows of
the calls the load made (``server: LIST configmaps (namespace)``): the tests run on the server's
histogram buckets (ordered by bound), its p50/p99 are bucket bounds, and an answer with a code of
400 or more counts as an error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import attrs

from kperf_core.api_calls import url_path
from kperf_core.metrics import LatencyHistogram
from kperf_core.report_model import Metrics, Report, ServerCall

#: A histogram's bucket counts keyed by what orders the buckets: the client's bucket indexes
#: (ints), the server's upper bounds (floats).
_Buckets = Mapping[Any, int]

#: Significance level of every test.
ALPHA = 0.01
#: The label of the comparison over all keys.
OVERALL = "(all keys)"


def mann_whitney_p(base: LatencyHistogram, new: LatencyHistogram) -> float:
    """One-sided p-value that ``new`` is stochastically slower than ``base`` (U test)."""
    return _mann_whitney(base.buckets, new.buckets)


def _mann_whitney(base: _Buckets, new: _Buckets) -> float:
    """The U test on two histograms' buckets, keyed by anything that orders them (a bucket index,
    a server bucket's upper bound): a bucket's values are ties."""
    n1, n2 = sum(base.values()), sum(new.values())
    if n1 == 0 or n2 == 0:
        return 1.0
    total = n1 + n2
    below = 0
    rank_sum_new = 0.0
    ties = 0.0
    for index in sorted(set(base) | set(new)):
        a, b = base.get(index, 0), new.get(index, 0)
        t = a + b
        rank_sum_new += b * (below + (t + 1) / 2)
        ties += t**3 - t
        below += t
    u_new = rank_sum_new - n2 * (n2 + 1) / 2
    variance = n1 * n2 / 12 * ((total + 1) - ties / (total * (total - 1)))
    if variance <= 0:
        return 1.0  # every value in one bucket: nothing to tell apart
    z = (u_new - n1 * n2 / 2) / math.sqrt(variance)
    return _upper_tail(z)


def _upper_tail(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


def proportion_increase_p(base_hits: int, base_n: int, new_hits: int, new_n: int) -> float:
    """One-sided p-value that the new proportion is larger (two-proportion z-test, pooled)."""
    if base_n == 0 or new_n == 0:
        return 1.0
    pooled = (base_hits + new_hits) / (base_n + new_n)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / base_n + 1 / new_n))
    if spread == 0:
        return 1.0
    return _upper_tail((new_hits / new_n - base_hits / base_n) / spread)


def _bucket_at(buckets: _Buckets, q: float) -> Any:
    """The bucket holding the nearest-rank ``q`` quantile."""
    rank = max(1, math.ceil(sum(buckets.values()) * q))
    seen = 0
    ordered = sorted(buckets)
    for index in ordered:
        seen += buckets[index]
        if seen >= rank:
            return index
    return ordered[-1]


def tail_p(base: LatencyHistogram, new: LatencyHistogram, q: float = 0.99) -> float:
    """One-sided p-value that more of ``new`` lies beyond ``base``'s ``q`` bucket."""
    return _tail(base.buckets, new.buckets, q)


def _tail(base: _Buckets, new: _Buckets, q: float) -> float:
    base_n, new_n = sum(base.values()), sum(new.values())
    if base_n == 0 or new_n == 0:
        return 1.0
    edge = _bucket_at(base, q)
    beyond_base = sum(n for i, n in base.items() if i > edge)
    beyond_new = sum(n for i, n in new.items() if i > edge)
    return proportion_increase_p(beyond_base, base_n, beyond_new, new_n)


@attrs.frozen
class Change:
    """One figure in both runs."""

    base: float | None
    new: float | None
    #: (new - base) / base; None when either is missing or base is 0.
    relative: float | None
    #: One-sided p-value of "worse"; None for figures without a test (throughput).
    p_value: float | None
    regressed: bool


@attrs.frozen
class KeyComparison:
    key: str
    p50: Change
    p99: Change
    throughput: Change
    error_rate: Change
    #: "both", or "base"/"new" when the key is in one run only (never a regression).
    present_in: str = "both"

    @property
    def regressed(self) -> bool:
        return any(c.regressed for c in (self.p50, self.p99, self.throughput, self.error_rate))

    def reasons(self) -> list[str]:
        found = []
        for label, change in (
            ("p50", self.p50),
            ("p99", self.p99),
            ("throughput", self.throughput),
            ("error rate", self.error_rate),
        ):
            if change.regressed:
                delta = f"{change.relative:+.1%}" if change.relative is not None else "new"
                test = f", p={change.p_value:.2g}" if change.p_value is not None else ""
                found.append(f"{label} {delta}{test}")
        return found


@attrs.frozen
class Comparison:
    budget: float
    keys: tuple[KeyComparison, ...]
    #: The server's figures of each API call the load made (both reports' ``server`` sections),
    #: keyed ``server: VERB resource (scope)``; empty when either report has no server view.
    server: tuple[KeyComparison, ...] = ()

    @property
    def regressions(self) -> tuple[KeyComparison, ...]:
        return tuple(k for k in (*self.keys, *self.server) if k.regressed)


def _relative(base: float | None, new: float | None) -> float | None:
    if base is None or new is None or base == 0:
        return None
    return (new - base) / base


def _latency(b: float | None, n: float | None, p: float, budget: float) -> Change:
    rel = _relative(b, n)
    return Change(b, n, rel, p, rel is not None and rel > budget and p < ALPHA)


class _Latencies(Protocol):
    """What the tests need of a histogram: the client's, or the server's (bucket bounds)."""

    def quantile(self, q: float) -> float | None: ...


@attrs.frozen
class _Side:
    histogram: _Latencies
    #: the histogram's buckets keyed by something that orders them
    buckets: _Buckets
    succeeded: int
    failed: int
    seconds: float

    def at(self, q: float) -> float | None:
        return self.histogram.quantile(q) if sum(self.buckets.values()) else None


def _side(metrics: Metrics, keys: Iterable[str]) -> _Side:
    histogram = LatencyHistogram()
    succeeded = failed = 0
    for key in keys:
        counts = metrics.requests_by_url[key]
        succeeded += counts.succeeded
        failed += counts.failed
        if key in metrics.latency_histograms_by_url:
            histogram.merge(metrics.latency_histograms_by_url[key])
    return _Side(histogram, histogram.buckets, succeeded, failed, metrics.duration_seconds)


def _server_side(call: ServerCall, seconds: float) -> _Side | None:
    """A server row as a side: its latency histogram (bucket bounds order the buckets, +Inf
    last), its answers with a code of 400 or more as failures."""
    if call.latency is None:
        return None
    buckets = {math.inf if bound is None else bound: n for bound, n in call.latency.buckets}
    return _Side(call.latency, buckets, call.count - call.failed, call.failed, seconds)


def _compare(key: str, base: _Side, new: _Side, budget: float) -> KeyComparison:
    p50 = _latency(base.at(0.5), new.at(0.5), _mann_whitney(base.buckets, new.buckets), budget)
    p99 = _latency(base.at(0.99), new.at(0.99), _tail(base.buckets, new.buckets, 0.99), budget)
    b_rate = base.succeeded / base.seconds if base.seconds > 0 else None
    n_rate = new.succeeded / new.seconds if new.seconds > 0 else None
    rate_rel = _relative(b_rate, n_rate)
    throughput = Change(b_rate, n_rate, rate_rel, None, rate_rel is not None and -rate_rel > budget)
    b_total, n_total = base.succeeded + base.failed, new.succeeded + new.failed
    b_err = base.failed / b_total if b_total else None
    n_err = new.failed / n_total if n_total else None
    err_p = proportion_increase_p(base.failed, b_total, new.failed, n_total)
    err_rel = _relative(b_err, n_err)
    grew = n_err is not None and b_err is not None and n_err > b_err * (1 + budget)
    errors = Change(b_err, n_err, err_rel, err_p, grew and err_p < ALPHA)
    return KeyComparison(key, p50, p99, throughput, errors)


def _missing(key: str, present_in: str) -> KeyComparison:
    nothing = Change(None, None, None, None, False)
    return KeyComparison(key, nothing, nothing, nothing, nothing, present_in)


def compare(base: Report, new: Report, budget: float) -> Comparison:
    """Compare the runs' aggregates key by key (server parts stripped) and over all keys."""
    b, n = base.aggregated, new.aggregated
    b_keys = {url_path(k): k for k in b.requests_by_url}
    n_keys = {url_path(k): k for k in n.requests_by_url}
    results = [_compare(OVERALL, _side(b, b_keys.values()), _side(n, n_keys.values()), budget)]
    for key in sorted(b_keys.keys() | n_keys.keys()):
        if key not in n_keys:
            results.append(_missing(key, "base"))
        elif key not in b_keys:
            results.append(_missing(key, "new"))
        else:
            results.append(_compare(key, _side(b, [b_keys[key]]), _side(n, [n_keys[key]]), budget))
    return Comparison(budget, tuple(results), _compare_server(base, new, budget))


def _compare_server(base: Report, new: Report, budget: float) -> tuple[KeyComparison, ...]:
    """The server's count, latency and errors of each call the load made, in both runs (other
    clients' calls during the run are not the load's)."""
    if base.server is None or new.server is None:
        return ()
    load_calls = {(c.verb, c.resource, c.scope) for r in (base, new) for c in r.aggregated.calls()}
    base_rows = {c.key: c for c in base.server.calls}
    results = []
    for call in new.server.calls:
        before = base_rows.get(call.key)
        if call.key not in load_calls or before is None:
            continue
        b = _server_side(before, base.aggregated.duration_seconds)
        n = _server_side(call, new.aggregated.duration_seconds)
        if b is not None and n is not None:
            verb, resource, scope = call.key
            results.append(_compare(f"server: {verb} {resource} ({scope})", b, n, budget))
    return tuple(results)
