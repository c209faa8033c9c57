"""The fast lane: a spec's closed loop run inside the native transport (``native/src/
closed_loop.rs``), for specs :func:`~kperf_core.engine.native_transport.choose_loop` admits.

The extension chooses each request by the spec's shares (its own generator, seeded from the
plan's), sends it, and buckets each success's latency as
:meth:`~kperf_core.metrics.LatencyHistogram.record` does; :class:`NativeLoop` takes what it did
about every 50 ms and merges it into the spec's :class:`CompletionRecorder` — successes as
histograms per key, failures one by one as :class:`Transfer` objects that the spec runner
classifies as it classifies every other (its one table of error classes). ``client``, ``total``,
``duration`` and ``rate`` keep their meaning; latency runs, as on the Python loop, from handing
the request to the connection pool to reading its answer whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kperf_core.engine.native_transport import NativeTransport
from kperf_core.engine.recorder import CompletionRecorder
from kperf_core.engine.transport import Transfer
from kperf_core.metrics import LatencyHistogram
from kperf_core.request_types import RequestType, WireRequest


class NativeLoop:
    """The native loop of one spec's load; :meth:`step` runs it a while and merges its figures."""

    def __init__(
        self,
        transport: NativeTransport,
        recorder: CompletionRecorder,
        load: Sequence[tuple[RequestType, WireRequest, int]],
        tag: Callable[[RequestType, str], Any],
    ) -> None:
        """``load``: each request type with a share, its fixed request and its share;
        ``tag``: what the spec runner keeps with a failed request's :class:`Transfer`."""
        self._transport = transport
        self._recorder = recorder
        self._requests = [request for _, request, _ in load]
        self._shares = [share for _, _, share in load]
        self._tags = [tag(request_type, request.metrics_key) for request_type, request, _ in load]
        self.sent = 0
        self.drained = False
        self.busy_time = 0.0
        self.max_lag = 0.0

    def start(
        self, *, seed: int, client: int, total: float, rate: float, start: float, deadline: float
    ) -> None:
        self._transport.start_loop(
            self._requests,
            self._shares,
            seed=seed,
            client=client,
            total=total,
            rate=rate,
            start=start,
            deadline=deadline,
        )

    def step(self, until: float) -> tuple[int, list[Transfer]]:
        """Run until ``until`` (``time.perf_counter()``) or until the load drained; returns how
        many requests succeeded meanwhile (recorded already) and the failed ones, to classify."""
        sent, _, drained, busy, lag, successes, failures = self._transport.run_loop(until)
        self.sent, self.drained, self.busy_time, self.max_lag = sent, drained, busy, lag
        succeeded = 0
        for kind, buckets, count, total, low, high, received in successes:
            latencies = LatencyHistogram.of_counts(buckets, count, total, low, high)
            self._recorder.successes(self._requests[kind].metrics_key, latencies, received)
            succeeded += count
        failed = []
        for kind, started, status, errno, message, received, finished, headers_at in failures:
            transfer = Transfer(self._requests[kind], self._tags[kind], started)
            transfer.attempts = 1
            transfer.status = status
            transfer.error = errno
            transfer.error_message = message
            transfer.bytes = received
            transfer.finished_at = finished
            transfer.headers_at = headers_at
            failed.append(transfer)
        return succeeded, failed

    def abandon(self) -> None:
        """Ctrl-C: the requests still in flight are abandoned; they reached the server but no
        count, so they are counted outside the load (as the Python loop's are)."""
        for request, count in zip(self._requests, self._transport.loop_in_flight(), strict=True):
            for _ in range(count):
                self._recorder.outside.add("abandoned", request.metrics_key, 0)
