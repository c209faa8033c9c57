"""The arrival models with plain numbers for time: no clock, no libcurl."""

from __future__ import annotations

import itertools
import math
import random
import statistics

import pytest

from kperf_core.engine.pacing import CATCH_UP_WINDOW, ClosedLoop, OpenArrivals, make_pacing


def drain(pacing, now: float, free: int) -> list[float]:
    """What ``free`` free slots may send at ``now``."""
    started = []
    for _ in range(free):
        at = pacing.take(now)
        if at is None:
            break
        started.append(at)
    return started


def test_closed_loop_without_rate_sends_whenever_a_slot_is_free() -> None:
    pacing = ClosedLoop(rate=0, start=10.0)
    assert drain(pacing, 10.0, 5) == [10.0] * 5
    assert pacing.max_lag == 0.0


def test_closed_loop_spaces_sends_evenly_with_burst_one() -> None:
    pacing = ClosedLoop(rate=100, start=0.0)  # one send per 10 ms
    assert drain(pacing, 0.0, 10) == [0.0]  # burst 1: a second send must wait
    assert pacing.wake_at() == pytest.approx(0.01)
    assert pacing.take(0.005) is None
    assert drain(pacing, 0.01, 10) == [0.01]


def test_closed_loop_makes_up_for_a_short_stall_only() -> None:
    pacing = ClosedLoop(rate=1000, start=0.0)  # 1 ms apart
    pacing.take(0.0)
    # woke 20 ms late: the sends due at 1, 2, … 21 ms go at once (within the catch-up window) …
    assert len(drain(pacing, 0.0215, 100)) == 21
    assert pacing.max_lag == pytest.approx(0.0205)
    # … but a stall longer than the window is forgotten beyond it, as a limiter with burst 1
    made_up = len(drain(pacing, 1.0215, 1000))
    assert abs(made_up - (CATCH_UP_WINDOW * 1000 + 1)) <= 1


def test_constant_arrivals_are_sent_at_their_intended_time() -> None:
    pacing = OpenArrivals(rate=10, start=0.0, poisson=False, rng=random.Random(1))
    # every slot was busy for 0.35 s: four arrivals waited, each keeps its intended time
    assert drain(pacing, 0.35, 10) == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert pacing.max_lag == pytest.approx(0.35)
    assert pacing.take(0.35) is None
    assert pacing.wake_at() == pytest.approx(0.4)


def test_open_arrivals_wait_for_a_slot() -> None:
    pacing = OpenArrivals(rate=10, start=0.0, poisson=False, rng=random.Random(1))
    assert drain(pacing, 0.25, 1) == [0.0]  # one slot: the others stay queued …
    assert pacing.wake_at() == -math.inf  # … and are due at once when a slot frees
    assert drain(pacing, 0.26, 5) == pytest.approx([0.1, 0.2])


def test_open_arrivals_stop_at_total_and_deadline() -> None:
    by_total = OpenArrivals(rate=100, start=0.0, poisson=False, rng=random.Random(1), total=3)
    assert len(drain(by_total, 10.0, 10)) == 3
    assert by_total.wake_at() == math.inf
    by_deadline = OpenArrivals(
        rate=100, start=0.0, poisson=False, rng=random.Random(1), deadline=0.05
    )
    assert len(drain(by_deadline, 10.0, 100)) == 5  # 0.00 … 0.04


def test_stop_counts_the_arrivals_that_never_got_a_slot() -> None:
    pacing = OpenArrivals(rate=10, start=0.0, poisson=False, rng=random.Random(1))
    pacing.take(0.0)
    assert pacing.stop(0.45) == 4  # 0.1 … 0.4 were due and never sent
    assert pacing.take(0.5) is not None or pacing.stop(0.5) == 0


def test_poisson_gaps_average_one_over_rate() -> None:
    pacing = OpenArrivals(rate=200, start=0.0, poisson=True, rng=random.Random(7))
    started = drain(pacing, 50.0, 100_000)
    gaps = [b - a for a, b in itertools.pairwise(started)]
    assert statistics.mean(gaps) == pytest.approx(1 / 200, rel=0.05)
    # exponential gaps: their spread equals their mean, unlike constant arrivals' zero spread
    assert statistics.stdev(gaps) == pytest.approx(1 / 200, rel=0.1)


def test_make_pacing_picks_the_model() -> None:
    rng = random.Random(1)
    assert isinstance(make_pacing("closed", 10, 0.0, rng=rng), ClosedLoop)
    assert make_pacing("poisson", 10, 0.0, rng=rng).poisson  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="rate > 0"):
        make_pacing("constant", 0, 0.0, rng=rng)
