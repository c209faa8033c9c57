"""Pieces of the data-set commands that need no cluster: batching and the client rate limit."""

from __future__ import annotations

import pytest
from kperf_plugins.scenarios import throttle
from kperf_plugins.scenarios.configmap_sets import MAX_SIZE, ConfigMapSet


def test_batches_cover_the_total_once_and_a_large_group_is_one_batch() -> None:
    assert ConfigMapSet(name="a", total=25, group_size=10).batches() == [
        range(0, 10),
        range(10, 20),
        range(20, 25),
    ]
    assert ConfigMapSet(name="a", total=10, group_size=30).batches() == [range(0, 10)]


def test_problems_name_every_flag() -> None:
    assert ConfigMapSet(name="a", size=0, group_size=-1, total=0).problems() == [
        "--size must be > 0 (got 0)",
        "--group-size must be > 0 (got -1)",
        "--total must be > 0 (got 0)",
    ]
    assert ConfigMapSet(name="a", size=MAX_SIZE + 1).problems() == [
        f"--size must be <= {MAX_SIZE} bytes (a ConfigMap is at most 1 MiB)"
    ]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_token_bucket_allows_a_burst_then_paces_at_qps(monkeypatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(throttle, "time", clock)
    bucket = throttle.TokenBucket(qps=10, burst=3)
    for _ in range(3):
        bucket.take()
    assert clock.slept == []  # the burst goes at once
    for _ in range(5):
        bucket.take()
    assert clock.slept == pytest.approx([0.1] * 5)  # then one token per 1/qps
    clock.now += 10  # idle: the bucket refills only up to the burst
    for _ in range(4):
        bucket.take()
    assert clock.slept[5:] == pytest.approx([0.1])


def test_token_bucket_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        throttle.TokenBucket(qps=0, burst=1)
