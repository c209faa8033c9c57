"""When the load may send its next request: the three arrival models, apart from any transport.

The spec runner asks :meth:`Pacing.take` each time a ``client`` slot is free; a pacing answers
with the time the request counts as started (latency is measured from it), or None when nothing
is due yet, and says when to ask again (:meth:`Pacing.wake_at`). Nothing here reads a clock or
touches libcurl: ``now`` is always given, so every model is tested with plain numbers.

* :class:`ClosedLoop` — upstream's closed loop with a rate cap: evenly spaced sends, burst 1, a
  send missed while every slot was busy made up for within ``CATCH_UP_WINDOW``;
* :class:`OpenArrivals` — constant or Poisson arrivals at ``rate`` whatever the responses; an
  arrival that finds every slot busy waits, and counts as started at its **intended** time, so
  client-side queueing shows in the percentiles (no coordinated omission).
"""

from __future__ import annotations

import abc
import collections
import math
import random

#: How far behind schedule the closed-loop limiter may catch up: sends missed while the loop
#: woke late or every slot was busy are made up for, up to this many seconds of them (at least
#: one interval). Upstream's limiter (burst 1) forgets them, so a stall of a few milliseconds at
#: 1,000 req/s already loses 1 %; 50 ms keeps the achieved rate on the offered one and a make-up
#: burst short.
CATCH_UP_WINDOW = 0.05


class Pacing(abc.ABC):
    """The load's arrival model for one spec."""

    #: Longest time a send was behind its schedule (the limiter's, or an arrival's wait).
    max_lag: float = 0.0

    @abc.abstractmethod
    def take(self, now: float) -> float | None:
        """A slot is free at ``now``: the start time of the request to send, or None if none
        is due (then ask again at :meth:`wake_at`)."""

    @abc.abstractmethod
    def wake_at(self) -> float:
        """When a request is next due (``math.inf``: never, e.g. every arrival was taken)."""

    def stop(self, now: float) -> int:
        """The spec ends at ``now``: forget what is queued; return how many requests were due
        and never sent."""
        return 0


class ClosedLoop(Pacing):
    """``client`` slots send as fast as the rate allows (``rate`` 0: as fast as they free).

    The native loop runs this rule inside the extension (``Limiter`` in native/src/
    closed_loop.rs): a change here is a change there."""

    def __init__(self, rate: float, start: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.catch_up = max(self.interval, CATCH_UP_WINDOW)
        self.next_allowed = start  # the limiter's theoretical arrival time

    def take(self, now: float) -> float | None:
        interval = self.interval
        if interval:
            if now < self.next_allowed:
                return None
            lag = now - self.next_allowed
            if lag > self.max_lag:
                self.max_lag = lag
            self.next_allowed = max(self.next_allowed, now - self.catch_up) + interval
        return now

    def wake_at(self) -> float:
        return self.next_allowed if self.interval else -math.inf


class OpenArrivals(Pacing):
    """Arrivals at ``rate``, evenly spaced or with exponential gaps (Poisson), at most ``total``
    of them and none at or after ``deadline``."""

    def __init__(
        self,
        rate: float,
        start: float,
        *,
        poisson: bool,
        rng: random.Random,
        total: float = math.inf,
        deadline: float = math.inf,
    ) -> None:
        if rate <= 0:
            raise ValueError("open-loop arrivals need a rate > 0")
        self.rate = rate
        self.interval = 1.0 / rate
        self.poisson = poisson
        self.rng = rng
        self.total = total
        self.deadline = deadline
        self.next_arrival = start
        self.arrivals = 0
        self.pending: collections.deque[float] = collections.deque()

    def _arrive(self, now: float) -> None:
        while (
            self.next_arrival <= now
            and self.arrivals < self.total
            and self.next_arrival < self.deadline
        ):
            self.pending.append(self.next_arrival)
            self.arrivals += 1
            self.next_arrival += self.rng.expovariate(self.rate) if self.poisson else self.interval

    def take(self, now: float) -> float | None:
        self._arrive(now)
        if not self.pending:
            return None
        intended = self.pending.popleft()
        if now - intended > self.max_lag:
            self.max_lag = now - intended
        return intended

    def wake_at(self) -> float:
        if self.pending:
            return -math.inf
        if self.arrivals >= self.total or self.next_arrival >= self.deadline:
            return math.inf
        return self.next_arrival

    def stop(self, now: float) -> int:
        self._arrive(now)
        not_sent = len(self.pending)
        self.pending.clear()
        return not_sent


def make_pacing(
    arrival: str,
    rate: float,
    start: float,
    *,
    rng: random.Random,
    total: float = math.inf,
    deadline: float = math.inf,
) -> Pacing:
    """The pacing for a spec's ``arrival`` (``closed``, ``constant`` or ``poisson``)."""
    if arrival == "closed":
        return ClosedLoop(rate, start)
    return OpenArrivals(
        rate, start, poisson=arrival == "poisson", rng=rng, total=total, deadline=deadline
    )
