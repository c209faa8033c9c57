"""Running one spec: choose requests by weight, pace them, send them, measure every completion.

The parts, each readable alone:

* :mod:`~kperf_core.engine.pacing` — when the next request is due (closed loop with a rate cap,
  constant or Poisson arrivals);
* :mod:`~kperf_core.engine.recorder` — what each completion adds to the spec's statistics;
* :mod:`~kperf_core.engine.background` — sessions beside the load (watches), on connections of
  their own;
* :class:`SpecPlan` — the spec's request types, their set-up before the run and their cleanup,
  and which transport carries its load (libcurl, or the native one for plain requests);
* :class:`SpecRunner` — the loop that ties them to the transport.

A spec ends at ``total`` requests or after ``duration`` seconds, whichever comes first. In-flight
requests then drain (bounded by the per-request timeout); open streams (watches) are closed and
counted by their request type's ``on_run_end``. When every ``client`` slot is busy the closed
loop's offered rate falls and the report says so (``concurrencyLimited``, ``clientSaturated``).
"""

from __future__ import annotations

import bisect
import gc
import heapq
import itertools
import math
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from kperf_core.engine.background import BackgroundSessions, file_limit_problem
from kperf_core.engine.blocking_client import BlockingClient
from kperf_core.engine.http2_settings import read_stream_limit
from kperf_core.engine.native_loop import NativeLoop
from kperf_core.engine.native_transport import (
    NATIVE,
    NativeTransport,
    TransportChoice,
    choose_loop,
    choose_transport,
)
from kperf_core.engine.pacing import Pacing, make_pacing
from kperf_core.engine.recorder import CompletionRecorder, OutsideLoad, Progress
from kperf_core.engine.transport import CurlTransport, Transfer, Transport
from kperf_core.metrics import KeyStats, http_error_key, transport_error_key
from kperf_core.request_types import (
    BuildContext,
    RequestType,
    ResponseHandling,
    StreamError,
)
from kperf_core.time_series import BASE_WINDOW_SECONDS, TimeSeries

if TYPE_CHECKING:
    import collections

    from kperf_core.kube import ClusterEndpoint
    from kperf_core.profile import LoadProfileSpec
    from kperf_core.registry import Registry

_LIBCURL_HTTP2_STREAM = 92


@attrs.define
class SpecResult:
    """What one spec measured; the report is built from this (see kperf_core.report)."""

    stats: dict[str, KeyStats]
    error_stats: collections.Counter[str]
    duration: float
    #: Requests sent by the load (the spec's shares, rate, client and total).
    sent: int
    configured_total: int
    rate: float
    arrival: str
    #: Requests that were due but never sent (open loop, run ended with arrivals queued).
    not_sent: int = 0
    #: Longest time an arrival waited for a free slot (open loop) or the limiter was behind.
    max_send_lag: float = 0.0
    #: Fraction of the run during which every slot was busy.
    busy_fraction: float = 0.0
    interrupted: bool = False
    #: CPU time this process used during the spec (the engine is one thread).
    cpu_seconds: float = 0.0
    raw_errors: list[dict[str, Any]] | None = None
    ended_by: str = ""
    #: per ``requests:`` item (by index): what its request type measured beyond latency
    request_type_facts: list[dict[str, Any]] = attrs.Factory(list)
    #: Sessions opened beside the load by background request types (informer watches, lists).
    background_sent: int = 0
    #: Requests sent outside the load's counts (prepare, cleanup, retried attempts, …).
    outside: OutsideLoad = attrs.Factory(OutsideLoad)
    #: How many connections each part used: ``{"load": {...}, "background": {...}}``.
    connections: dict[str, dict[str, Any]] = attrs.Factory(dict)
    #: Limits of the machine or the server that were reached, one line each.
    limits: list[str] = attrs.Factory(list)
    #: Engine processes that ran the spec side by side (``--workers``).
    workers: int = 1
    #: Per-window counts and latencies of each key (see kperf_core.time_series).
    series: TimeSeries = attrs.Factory(TimeSeries)

    @property
    def succeeded(self) -> int:
        return sum(s.succeeded for s in self.stats.values())

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.stats.values())

    @property
    def received_bytes(self) -> int:
        return sum(s.bytes for s in self.stats.values())


@attrs.frozen
class RunSettings:
    """Options that are not part of the profile."""

    user_agent: str = ""
    keep_raw: bool = False
    seed: int | None = None
    #: Returns True once the user asked to stop (Ctrl-C / SIGTERM).
    interrupted: Callable[[], bool] = lambda: False
    #: Called about once a second with the spec's figures so far, for progress output.
    progress: Callable[[Progress], None] | None = None
    #: (index, count) of this engine process among the run's workers (``--workers``).
    worker: tuple[int, int] = (0, 1)


class SpecPlan:
    """One spec's request types, made once; :meth:`prepare` before any spec's load starts,
    :meth:`cleanup` when the spec ends (or the run is abandoned)."""

    def __init__(
        self,
        spec: LoadProfileSpec,
        request_types: Registry[type[RequestType]],
        settings: RunSettings,
    ) -> None:
        self.spec = spec
        self.rng = random.Random(settings.seed)
        context = BuildContext(content_type=spec.content_type, rng=self.rng)
        self.instances = [request_types[item.kind](item.config, context) for item in spec.requests]
        self.shares = [item.shares for item in spec.requests]
        self.outside = OutsideLoad()
        #: which transport carries the load (chosen by :meth:`choose_transport`)
        self.transport = TransportChoice("libcurl")
        #: which loop sends the load: the native one (the fast lane) or Python's
        self.loop = TransportChoice("python")
        self._keep_raw = settings.keep_raw
        self._prepared: list[RequestType] = []
        self._client: BlockingClient | None = None

    def choose_transport(self, endpoint: ClusterEndpoint) -> None:
        """The native transport when it can carry every request of the spec, else libcurl
        (``KPERF_TRANSPORT`` forces one; a forced one that cannot is a ConfigError), and the
        native loop on it when the load needs no Python per request (``KPERF_NATIVE_LOOP``)."""
        self.transport = choose_transport(self.instances, endpoint)
        self.loop = choose_loop(self.spec, self.instances, self.transport, self._keep_raw)

    def prepare(self, endpoint: ClusterEndpoint) -> None:
        """Every request type's blocking set-up (a put reads its objects), counted outside the
        load. On failure the ones already prepared are cleaned up and the error is raised."""
        self._client = BlockingClient(endpoint, outside=self.outside, purpose="prepare")
        try:
            for instance in self.instances:
                self._prepared.append(instance)
                instance.prepare(self._client)
        except BaseException:
            self.cleanup()
            raise

    def cleanup(self) -> None:
        """Every prepared request type cleans up, even if an earlier one fails; the first error
        is raised. Safe to call twice."""
        client, self._client = self._client, None
        if client is None:
            return
        client.purpose = "cleanup"
        first: BaseException | None = None
        for instance in self._prepared:
            try:
                instance.cleanup(client)
            except Exception as exc:
                first = first or exc
        self._prepared.clear()
        client.close()
        if first is not None:
            raise first

    def chooser(self) -> Callable[[], RequestType]:
        """Picks the next load request type by ``shares`` (seeded)."""
        instances = self.instances
        if sum(1 for share in self.shares if share) == 1:  # nothing to choose: no random draw
            only = instances[next(i for i, share in enumerate(self.shares) if share)]
            return lambda: only
        cumulative = list(itertools.accumulate(self.shares))
        total = cumulative[-1]
        rng_random = self.rng.random
        bisect_right = bisect.bisect_right
        return lambda: instances[bisect_right(cumulative, rng_random() * total)]


class _Slot:
    """What the runner keeps with each transfer: who built it and under which key it counts."""

    __slots__ = ("background", "key", "request_type")

    def __init__(self, request_type: RequestType, key: str, background: bool) -> None:
        self.request_type = request_type
        self.key = key
        self.background = background


#: Below this many streams per connection no server needs asking: RFC 9113 recommends allowing
#: at least 100, and kube-apiserver allows 100 (>= 1.29) or 250.
ASSUMED_STREAM_LIMIT = 100


def load_connections(
    conns: int, client: int, disable_http2: bool, endpoint: ClusterEndpoint
) -> int:
    """HTTP/2 connections for the load: upstream's ``conns``, unless that puts more streams on a
    connection than the server allows — then as many as ``client`` needs, as Go's transport
    (upstream's) opens another connection when one is full; libcurl would queue the rest."""
    wanted = math.ceil(client / conns)
    if disable_http2 or wanted <= ASSUMED_STREAM_LIMIT:
        return conns
    allowed = read_stream_limit(endpoint) or wanted
    return max(conns, math.ceil(client / allowed))


class SpecRunner:
    """The loop of one spec: sends what the pacing allows into the load's transport, opens
    background sessions on theirs, and records every completion."""

    def __init__(self, plan: SpecPlan, endpoint: ClusterEndpoint, settings: RunSettings) -> None:
        spec = plan.spec
        self.plan = plan
        self.spec = spec
        self.settings = settings
        self.recorder = CompletionRecorder(settings.keep_raw)
        self.recorder.outside = plan.outside
        self.choose = plan.chooser() if any(plan.shares) else None
        #: HTTP/2 connections of the load (``conns``, or more when the server allows fewer
        #: streams per connection than ``client / conns``)
        self.load_connections = load_connections(
            spec.conns, spec.client, spec.disable_http2, endpoint
        )
        options: dict[str, Any] = {
            "conns": self.load_connections,
            "client": spec.client,
            "http2": not spec.disable_http2,
            "user_agent": settings.user_agent,
            "timeout": spec.timeout,
        }
        self.transport: Transport = (
            NativeTransport(endpoint, **options)
            if plan.transport.name == NATIVE
            else CurlTransport(
                endpoint,
                **options,
                want_retry_after=spec.max_retries > 0,
                on_chunk=self._on_chunk,
            )
        )
        self.background: BackgroundSessions | None = None
        self.background_transport: CurlTransport | None = None
        self.limits: list[str] = []
        if any(instance.background for instance in plan.instances):
            self._open_background_pool(endpoint)
        self.total = spec.total if spec.total > 0 else math.inf
        self.sent = 0
        self.completed = 0
        self.retries: list[tuple[float, int, Transfer]] = []  # heap of (due, seq, transfer)
        self._retry_seq = itertools.count()
        self.streams: set[Transfer] = set()
        self.ended_by = ""
        self.not_sent = 0
        self._start = 0.0
        #: seconds the background sessions took to be established before the load started
        self.background_ready = 0.0

    def _open_background_pool(self, endpoint: ClusterEndpoint) -> None:
        spec = self.spec
        http2 = not spec.disable_http2
        background = BackgroundSessions(
            self.plan.instances,
            http2=http2,
            stream_limit=read_stream_limit(endpoint) if http2 else None,
            worker=self.settings.worker,
        )
        if not background.sessions:
            return  # another worker's share: this one has none
        problem = file_limit_problem(
            (self.load_connections if http2 else spec.client) + background.connections
        )
        if problem:
            self.limits.append(problem)
        self.background = background
        self.background_transport = CurlTransport(
            endpoint,
            # room for a connection per session: libcurl fills each to the stream limit first
            conns=background.sessions,
            client=background.sessions,
            max_streams=background.stream_limit,
            http2=http2,
            user_agent=self.settings.user_agent,
            timeout=spec.timeout,
            want_retry_after=True,
            on_chunk=self._on_chunk,
        )
        # the native transport carries no background sessions (choose_transport)
        assert isinstance(self.transport, CurlTransport)
        self.transport.attach(self.background_transport)

    # -- callbacks ---------------------------------------------------------------------------

    def _on_chunk(self, transfer: Transfer, chunk: bytes) -> bool:
        slot: _Slot = transfer.tag
        request_type = slot.request_type
        try:
            return request_type.on_chunk(transfer.request, _state(transfer), chunk)
        except StreamError as exc:
            transfer.failed_stream = exc.error_key
        except Exception as exc:  # a request type's bug fails its request, not the run
            transfer.failed_stream = _plugin_error_key(request_type, "on_chunk", exc)
        return False

    # -- sending -----------------------------------------------------------------------------

    def _send(self, request_type: RequestType, started: float) -> None:
        request = request_type.build()
        transfer = self.transport.start(
            request, _Slot(request_type, request.metrics_key, False), started
        )
        if request.response is ResponseHandling.STREAM:
            self.streams.add(transfer)
        self.sent += 1

    def _open_background(self, now: float) -> None:
        background = self.background
        assert background is not None and self.background_transport is not None
        for request_type, new in background.due(now):
            request = request_type.build_first() if new else request_type.build()
            transfer = self.background_transport.start(
                request, _Slot(request_type, request.metrics_key, True), now
            )
            if request.response is ResponseHandling.STREAM:
                self.streams.add(transfer)
            background.opened(transfer, new)

    # -- completions -------------------------------------------------------------------------

    def _complete(self, transfer: Transfer, now: float) -> None:
        slot: _Slot = transfer.tag
        request = transfer.request
        status = transfer.status
        errno = transfer.error
        failure = None
        if request.response is ResponseHandling.STREAM:
            self.streams.discard(transfer)
            ok = transfer.stream_done or (errno == 0 and 200 <= status < 300)
            failure = transfer.failed_stream
            if ok and not transfer.stream_done and failure is None:
                failure = slot.request_type.on_stream_end(request, _state(transfer))
        else:
            # libcurl reports RST_STREAM NO_ERROR after a complete answer as an error; Go's
            # client (upstream) counts it a success
            ok = 200 <= status < 300 and (
                errno == 0
                or (errno == _LIBCURL_HTTP2_STREAM and "(err 0)" in transfer.error_message)
            )
            if ok and request.response is ResponseHandling.BUFFER:
                try:
                    follow = slot.request_type.on_response(
                        request, status, b"".join(transfer.body or ())
                    )
                except Exception as exc:  # a request type's bug fails its request, not the run
                    ok, failure = False, _plugin_error_key(slot.request_type, "on_response", exc)
                else:
                    if follow is not None:
                        # next page: same slot, same key, same clock; the page just read is
                        # a request the measured walk does not count
                        self.recorder.outside.add("earlierPages", slot.key, status)
                        transfer.request = follow
                        self._transport_of(slot).resubmit(transfer)
                        return
        if ok and failure is None:
            end = transfer.headers_at if request.latency_to_headers and transfer.headers_at else now
            self.recorder.success(slot.key, end - transfer.started, transfer.bytes)
        else:
            if (
                failure is None
                and not slot.background
                and (status == 429 or status >= 500)
                and transfer.retry_after is not None
                and transfer.attempts <= self.spec.max_retries
            ):
                # client-go's rule: retry 429/5xx that carry Retry-After, after that long; the
                # slot stays taken and the latency includes the wait (as upstream measures it).
                self.recorder.outside.add("retriedAttempts", slot.key, status)
                heapq.heappush(
                    self.retries, (now + transfer.retry_after, next(self._retry_seq), transfer)
                )
                return
            if failure is None:
                failure = (
                    http_error_key(status)
                    if errno == 0 or status >= 300
                    else transport_error_key(errno, transfer.error_message)
                )
            self._fail(slot, transfer, failure, now)
            ok = False
        self._finished(slot, transfer, ok, now)

    def _fail(self, slot: _Slot, transfer: Transfer, failure: str, now: float) -> None:
        slot.request_type.on_error(transfer.request, failure)
        self.recorder.failure(
            slot.key, failure, now - transfer.started, transfer.status, transfer.bytes
        )

    def _finished(self, slot: _Slot, transfer: Transfer, ok: bool, now: float) -> None:
        if slot.background:
            assert self.background is not None
            self.background.ended(transfer, slot.request_type, ok, now)
        else:
            self.completed += 1

    def _transport_of(self, slot: _Slot) -> Transport:
        if slot.background:
            assert self.background_transport is not None
            return self.background_transport
        return self.transport

    # -- the end -----------------------------------------------------------------------------

    def _stop(self, now: float, pacing: Pacing) -> None:
        interrupted = self.settings.interrupted()
        self.ended_by = (
            "interrupted" if interrupted else "total" if self.sent >= self.total else "duration"
        )
        self.not_sent = pacing.stop(now)
        if self.background is not None:
            self.background.stop()
        # A total counts whole requests, so its streams run to their end (each has its own
        # deadline); a duration or Ctrl-C ends the streams still open, and every end closes
        # the background sessions.
        for transfer in [t for t in self.streams if self.ended_by != "total" or t.tag.background]:
            slot: _Slot = transfer.tag
            self._transport_of(slot).abort(transfer)
            self.streams.discard(transfer)
            if slot.request_type.on_run_end(transfer.request, _state(transfer)):
                transfer.stream_done = True
                self._complete(transfer, now)
            else:
                self._fail(slot, transfer, "unknown/stream open at end of run", now)
                self._finished(slot, transfer, False, now)

    # -- the loop ----------------------------------------------------------------------------

    def _establish_background(self) -> float:
        """Open every background session before the load starts; wait until each is established
        or failed — as long as sessions keep being established: the load starts anyway once none
        was for the spec's request timeout. Returns the seconds it took."""
        background = self.background
        assert background is not None
        transport = self.transport
        start = now = progress_at = time.perf_counter()
        most = 0
        background.start(start)
        while not self.settings.interrupted():
            if background.wake_at() <= now:
                self._open_background(now)
            settled = background.settled(now)
            if settled >= background.sessions:
                break
            if settled > most:
                most, progress_at = settled, now
            elif now - progress_at >= self.spec.timeout:
                self.limits.append(
                    f"background sessions: {background.sessions - settled} of "
                    f"{background.sessions} not established after {now - start:.0f} s (none "
                    f"was in the last {self.spec.timeout:g} s); the load started anyway"
                )
                break
            for transfer in transport.poll(max(0.0, min(0.05, background.wake_at() - now))):
                self._complete(transfer, transfer.finished_at)
            now = time.perf_counter()
        return time.perf_counter() - start

    def run(self) -> SpecResult:
        """Establish the background sessions, run the load, free the connections."""
        gc_threshold = gc.get_threshold()
        # Few objects per request live past it; collecting young objects every 700 allocations
        # would cost more CPU than it frees.
        gc.set_threshold(max(gc_threshold[0], 50_000), *gc_threshold[1:])
        try:
            if self.background is not None:
                self.background_ready = self._establish_background()
            cpu_start = time.process_time()
            start = self._start = time.perf_counter()
            self.recorder.start_series(start)
            deadline = start + self.spec.duration if self.spec.duration > 0 else math.inf
            pacing = make_pacing(
                self.spec.arrival,
                self.spec.rate,
                start,
                rng=self.plan.rng,
                total=self.total,
                deadline=deadline,
            )
            if self.plan.loop.name == NATIVE:
                busy_time = self._native_loop(pacing, deadline)
            else:
                busy_time = self._loop(pacing, deadline)
            end = time.perf_counter()
            self.recorder.close_period(end)
            elapsed = end - start
            cpu_seconds = time.process_time() - cpu_start
        finally:
            gc.set_threshold(*gc_threshold)
            self._close()
        return self._result(elapsed, cpu_seconds, busy_time, pacing)

    def _loop(self, pacing: Pacing, deadline: float) -> float:
        """Send, poll and record until the spec ends and its requests drained; returns the
        seconds during which every ``client`` slot was busy."""
        settings = self.settings
        transport = self.transport
        retries = self.retries
        client = self.spec.client
        total = self.total
        choose = self.choose
        background = self.background
        take = pacing.take
        busy_since: float | None = None
        busy_time = 0.0
        now = time.perf_counter()
        next_tick = self._start + BASE_WINDOW_SECONDS
        while True:
            stopping = self.sent >= total or now >= deadline or settings.interrupted()
            if stopping and not self.ended_by:
                self._stop(now, pacing)
            wait = 0.05
            if not stopping:
                if background is not None:
                    if background.wake_at() <= now:
                        self._open_background(now)
                    wait = min(wait, background.wake_at() - now)
                if choose is not None:
                    while transport.in_flight + len(retries) < client and self.sent < total:
                        started = take(now)
                        if started is None:
                            wait = min(wait, pacing.wake_at() - now)
                            break
                        self._send(choose(), started)
                        now = time.perf_counter()
            elif transport.in_flight == 0 and not retries and not self._background_busy():
                break
            elif settings.interrupted():
                break  # Ctrl-C: report what completed; in-flight requests are abandoned
            busy = transport.in_flight + len(retries) >= client
            if busy and busy_since is None:
                busy_since = now
            elif not busy and busy_since is not None:
                busy_time += now - busy_since
                busy_since = None
            if retries:
                wait = min(wait, retries[0][0] - now)
            done = transport.poll(max(0.0, wait))
            for transfer in done:
                self._complete(transfer, transfer.finished_at)
            now = time.perf_counter()
            while retries and retries[0][0] <= now:
                transport.resubmit(heapq.heappop(retries)[2])
            if now >= next_tick:
                next_tick = self._tick(now)
        if busy_since is not None:
            busy_time += time.perf_counter() - busy_since
        return busy_time

    def _native_loop(self, pacing: Pacing, deadline: float) -> float:
        """:meth:`_loop` for the fast lane: the extension sends and records, this steers it
        (ticks, progress, Ctrl-C, the end) and classifies its failures; returns the busy time."""
        assert isinstance(self.transport, NativeTransport)
        plan = self.plan
        load = [
            (instance, request, share)
            for instance, share in zip(plan.instances, plan.shares, strict=True)
            if share and (request := instance.fixed_request()) is not None
        ]
        lane = NativeLoop(self.transport, self.recorder, load, lambda t, key: _Slot(t, key, False))
        lane.start(
            seed=plan.rng.getrandbits(64),
            client=self.spec.client,
            total=self.total,
            rate=self.spec.rate,
            start=self._start,
            deadline=deadline,
        )
        next_tick = self._start + BASE_WINDOW_SECONDS
        while True:
            succeeded, failed = lane.step(min(next_tick, time.perf_counter() + 0.05))
            self.sent = lane.sent
            self.completed += succeeded
            for transfer in failed:
                self._complete(transfer, transfer.finished_at)
            now = time.perf_counter()
            interrupted = self.settings.interrupted()
            if (self.sent >= self.total or now >= deadline or interrupted) and not self.ended_by:
                self._stop(now, pacing)
            if interrupted:
                lane.abandon()  # as the Python loop: report what completed
                break
            if lane.drained:
                break
            if now >= next_tick:
                next_tick = self._tick(now)
        pacing.max_lag = lane.max_lag  # the extension ran pacing.ClosedLoop's limiter
        return lane.busy_time

    def _tick(self, now: float) -> float:
        """Once a second: close the time series' period, show progress; returns when the next
        second of the run begins (ticks stay on the windows' edges, a late one does not drift)."""
        since = now - self._start
        self.recorder.close_period(now)
        if self.settings.progress is not None:
            limits = (self.spec.duration, self.spec.total)
            self.settings.progress(self.recorder.progress(since, self.sent, self.completed, limits))
        return self._start + (math.floor(since / BASE_WINDOW_SECONDS) + 1) * BASE_WINDOW_SECONDS

    def _background_busy(self) -> bool:
        """Background requests still in flight after the end (a watch's list: it finishes)."""
        return self.background_transport is not None and self.background_transport.in_flight > 0

    def _close(self) -> None:
        """Free the connections; requests abandoned in flight (Ctrl-C) reached the server but
        no count: they are counted outside the load."""
        for transfer in self.transport.close():
            self.recorder.outside.add("abandoned", transfer.tag.key, 0)

    def _connections(self) -> dict[str, dict[str, Any]]:
        spec = self.spec
        http2 = not spec.disable_http2
        connections: dict[str, dict[str, Any]] = {
            "load": {
                "opened": self.transport.connections_opened,
                "limit": self.load_connections if http2 else spec.client,
                "transport": self.plan.transport.name,
            }
        }
        if self.plan.transport.reason:
            connections["load"]["notNativeBecause"] = self.plan.transport.reason
        connections["load"]["loop"] = self.plan.loop.name
        if self.plan.loop.reason:
            connections["load"]["notNativeLoopBecause"] = self.plan.loop.reason
        if isinstance(self.transport, NativeTransport):
            connections["load"]["protocol"] = self.transport.protocol  # what ALPN agreed on
        if self.background is not None and self.background_transport is not None:
            connections["background"] = {
                "sessions": self.background.sessions,
                "opened": self.background_transport.connections_opened,
                # what the sessions need at the planned streams per connection (HTTP/2)
                "planned": self.background.connections,
                "streamsPerConnection": self.background.stream_limit if http2 else 1,
                # "server": its SETTINGS said so; "default": they could not be read
                "streamLimitFrom": self.background.stream_limit_from if http2 else "http/1.1",
                "establishedSeconds": self.background_ready,
            }
        return connections

    def _result(
        self, elapsed: float, cpu_seconds: float, busy_time: float, pacing: Pacing
    ) -> SpecResult:
        recorder = self.recorder
        limits = list(self.limits)
        background = self.background
        if background is not None and background.failed:
            errors = ", ".join(f"{k}={v}" for k, v in recorder.errors.most_common(3))
            limits.append(
                f"background sessions: {background.failed} of {background.sent} failed and "
                f"were opened again ({errors})"
            )
        return SpecResult(
            stats=recorder.key_stats(),
            error_stats=recorder.errors,
            duration=elapsed,
            sent=self.sent,
            configured_total=self.spec.total,
            rate=self.spec.rate,
            arrival=self.spec.arrival,
            not_sent=self.not_sent,
            max_send_lag=pacing.max_lag,
            busy_fraction=busy_time / elapsed if elapsed > 0 else 0.0,
            interrupted=self.ended_by == "interrupted",
            cpu_seconds=cpu_seconds,
            background_sent=background.sent if background is not None else 0,
            request_type_facts=[
                {"item": i, "type": instance.name, **facts}
                for i, instance in enumerate(self.plan.instances)
                if (facts := instance.facts())
            ],
            raw_errors=recorder.raw_errors,
            ended_by=self.ended_by,
            outside=recorder.outside,
            connections=self._connections(),
            limits=limits,
            series=recorder.series,
        )


def run_specs(
    specs: Sequence[LoadProfileSpec],
    request_types: Registry[type[RequestType]],
    endpoint: ClusterEndpoint,
    settings: RunSettings,
    before_spec: Callable[[], object] = lambda: None,
) -> list[SpecResult]:
    """Run specs back to back in this process. Every spec's request types are made and prepared
    before the first request, so that what the cluster lacks (a put's missing objects) is said
    before anything is measured; each spec's cleanup runs when it ends, and every prepared one's
    on every path. ``before_spec`` runs before each spec starts (the workers' barrier)."""
    plans = [SpecPlan(spec, request_types, settings) for spec in specs]
    results: list[SpecResult] = []
    for plan in plans:
        plan.choose_transport(endpoint)
    try:
        for plan in plans:
            plan.prepare(endpoint)
        for index, plan in enumerate(plans):
            before_spec()
            try:
                result = SpecRunner(plan, endpoint, _of_spec(settings, index, len(plans))).run()
            finally:
                plan.cleanup()  # a spec's objects go before the next spec starts
            results.append(result)
            if result.interrupted:
                break  # Ctrl-C: later specs never start; what ran is reported
    finally:
        for plan in plans:
            plan.cleanup()  # specs that were prepared but never ran
    return results


def _of_spec(settings: RunSettings, index: int, count: int) -> RunSettings:
    """Settings whose progress says which spec it is about."""
    show = settings.progress
    if show is None or count == 1:
        return settings
    return attrs.evolve(
        settings, progress=lambda progress: show(attrs.evolve(progress, spec=index, specs=count))
    )


def _state(transfer: Transfer) -> dict[str, Any]:
    """The per-request dict a streaming request type keeps its bookkeeping in."""
    if transfer.state is None:
        transfer.state = {}
    return transfer.state


def _plugin_error_key(request_type: RequestType, method: str, exc: Exception) -> str:
    # The exception's type only, not its message: error classes must stay few.
    return f"unknown/{request_type.name}.{method} raised {type(exc).__name__}"
