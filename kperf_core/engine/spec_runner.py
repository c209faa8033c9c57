"""Running one spec: choose requests by weight, pace them, send them, measure every completion.

Two load models:

* **closed** (upstream's, the default) — ``client`` slots; a free slot sends the next request as
  soon as the rate limiter allows (evenly spaced sends, making up for a short stall, see
  ``CATCH_UP_WINDOW``). When every slot is busy the offered rate falls and the latency of the delay
  is hidden: the report says so (``concurrencyLimited``, ``clientSaturated``).
* **constant** / **poisson** (open loop) — arrivals are scheduled at ``rate`` regardless of
  responses (evenly spaced or exponentially distributed gaps); an arrival that finds every slot busy
  waits, and its latency is measured from the **intended** send time, so client-side queueing shows
  up in the percentiles instead of vanishing (no coordinated omission).

A spec ends at ``total`` requests or after ``duration`` seconds, whichever comes first. In-flight
requests then drain (bounded by the per-request timeout); open streams (watches) are closed and
counted by their request type's ``on_run_end``.
"""

from __future__ import annotations

import bisect
import collections
import gc
import heapq
import itertools
import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs

from kperf_core.engine.blocking_client import BlockingClient
from kperf_core.engine.transport import CurlTransport, Transfer
from kperf_core.errors import ConfigError
from kperf_core.metrics import KeyStats, http_error_key, transport_error_key
from kperf_core.request_types import (
    BuildContext,
    RequestType,
    ResponseHandling,
    StreamError,
)

if TYPE_CHECKING:
    from kperf_core.kube import ClusterEndpoint
    from kperf_core.profile import LoadProfileSpec
    from kperf_core.registry import Registry

#: How far behind schedule the closed-loop limiter may catch up: sends missed while the loop
#: woke late or every slot was busy are made up for, up to this many seconds of them (at least
#: one interval). Upstream's limiter (burst 1) forgets them, so a stall of a few milliseconds at
#: 1,000 req/s already loses 1 %; 50 ms keeps the achieved rate on the offered one and a make-up
#: burst short.
CATCH_UP_WINDOW = 0.05
#: Seconds before a failed background session (a watch the server refused) is opened again.
BACKGROUND_RETRY_PAUSE = 1.0
_LIBCURL_WRITE_ERROR = 23  # what an aborted stream (our own doing) reports
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
    #: Called about once a second with (sent, completed) for progress output.
    progress: Callable[[int, int], None] | None = None


class _Slot:
    __slots__ = ("key", "request_type")

    def __init__(self, request_type: RequestType, key: str) -> None:
        self.request_type = request_type
        self.key = key


def run_spec(
    spec: LoadProfileSpec,
    request_types: Registry[type[RequestType]],
    endpoint: ClusterEndpoint,
    settings: RunSettings,
) -> SpecResult:
    rng = random.Random(settings.seed)
    context = BuildContext(content_type=spec.content_type, rng=rng)
    instances = [request_types[item.kind](item.config, context) for item in spec.requests]
    cumulative = list(itertools.accumulate(item.shares for item in spec.requests))
    share_total = cumulative[-1]
    if share_total == 0 and spec.duration <= 0:
        raise ConfigError(
            "a spec whose requests all run in the background (watch) needs a duration"
        )

    def choose() -> RequestType:
        return instances[bisect.bisect_right(cumulative, rng.random() * share_total)]

    if len(instances) == 1:  # nothing to choose: no random draw per request

        def choose() -> RequestType:
            return instances[0]

    stats: dict[str, KeyStats] = {}
    errors: collections.Counter[str] = collections.Counter()
    raw_errors: list[dict[str, Any]] | None = [] if settings.keep_raw else None

    def on_chunk(transfer: Transfer, chunk: bytes) -> bool:
        slot: _Slot = transfer.tag
        try:
            return slot.request_type.on_chunk(transfer.request, _state(transfer), chunk)
        except StreamError as exc:
            transfer.failed_stream = exc.error_key
        except Exception as exc:  # a request type's bug fails its request, not the run
            transfer.failed_stream = _plugin_error_key(slot.request_type, "on_chunk", exc)
        return False

    setup_client = BlockingClient(endpoint)
    try:
        for instance in instances:
            instance.prepare(setup_client)
    except BaseException:
        _cleanup(instances, setup_client)
        raise
    transport = CurlTransport(
        endpoint,
        conns=spec.conns,
        # room for the background sessions too, beside the load's `client` streams
        client=spec.client + sum(i.background_sessions() for i in instances if i.background),
        http2=not spec.disable_http2,
        user_agent=settings.user_agent,
        timeout=spec.timeout,
        want_retry_after=spec.max_retries > 0,
        on_chunk=on_chunk,
    )
    total = spec.total if spec.total > 0 else math.inf
    open_loop = spec.arrival != "closed"
    interval = 1.0 / spec.rate if spec.rate > 0 else 0.0
    catch_up = max(interval, CATCH_UP_WINDOW)
    poisson = spec.arrival == "poisson"

    cpu_start = time.process_time()
    start = time.perf_counter()
    deadline = start + spec.duration if spec.duration > 0 else math.inf
    next_allowed = start  # closed loop: the limiter's theoretical arrival time
    next_arrival = start  # open loop: the next intended send time
    pending: collections.deque[float] = collections.deque()
    retries: list[tuple[float, int, Transfer]] = []  # heap of (due, seq, transfer)
    retry_seq = itertools.count()
    streams: set[Transfer] = set()
    background: set[Transfer] = set()
    reopen: list[tuple[float, int, RequestType]] = []  # heap of (due, seq, background type)
    reopen_seq = itertools.count()
    background_sent = 0
    sent = 0
    completed = 0
    arrivals = 0
    not_sent = 0
    max_lag = 0.0
    busy_since: float | None = None
    busy_time = 0.0
    ended_by = ""
    last_progress = start

    def record_failure(slot: _Slot, transfer: Transfer, key: str, now: float) -> None:
        errors[key] += 1
        slot.request_type.on_error(transfer.request, key)
        slot_stats = stats.setdefault(slot.key, KeyStats(settings.keep_raw))
        slot_stats.failed += 1
        if raw_errors is not None:
            kind, _, message = key.partition("/")
            raw_errors.append(
                {
                    "method": slot.key.split(" ", 1)[0],
                    "url": slot.key.split(" ", 1)[1],
                    "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    "duration": now - transfer.started,
                    "type": kind,
                    "code": transfer.status if kind == "http" else 0,
                    "message": "" if kind == "http" else message,
                }
            )

    def complete(transfer: Transfer, now: float) -> None:
        nonlocal completed
        slot: _Slot = transfer.tag
        request = transfer.request
        status = transfer.status
        errno = transfer.error
        if request.response is ResponseHandling.STREAM:
            streams.discard(transfer)
            ok = transfer.stream_done or (errno == 0 and 200 <= status < 300)
            failure = transfer.failed_stream
            if ok and not transfer.stream_done and failure is None:
                failure = slot.request_type.on_stream_end(request, _state(transfer))
        else:
            ok = 200 <= status < 300 and (
                errno == 0
                or (errno == _LIBCURL_HTTP2_STREAM and "(err 0)" in transfer.error_message)
            )
            failure = None
        if ok and failure is None:
            follow = None
            if request.response is ResponseHandling.BUFFER:
                try:
                    follow = slot.request_type.on_response(
                        request, status, b"".join(transfer.body or ())
                    )
                except Exception as exc:  # a request type's bug fails its request, not the run
                    ok, failure = False, _plugin_error_key(slot.request_type, "on_response", exc)
        if ok and failure is None:
            if follow is not None:
                transfer.request = follow  # next page: same slot, same key, same clock
                transport.resubmit(transfer)
                return
            key_stats = stats.get(slot.key)
            if key_stats is None:
                key_stats = stats[slot.key] = KeyStats(settings.keep_raw)
            end = transfer.headers_at if request.latency_to_headers and transfer.headers_at else now
            latency = end - transfer.started
            key_stats.latencies.record(latency)
            if key_stats.raw is not None:
                key_stats.raw.append(latency)
            key_stats.succeeded += 1
            key_stats.bytes += transfer.bytes
        else:
            if (
                failure is None
                and (status == 429 or status >= 500)
                and transfer.retry_after is not None
                and transfer.attempts <= spec.max_retries
            ):
                # client-go's rule: retry 429/5xx that carry Retry-After, after that long; the
                # slot stays taken and the latency includes the wait (as upstream measures it).
                heapq.heappush(retries, (now + transfer.retry_after, next(retry_seq), transfer))
                return
            if failure is None:
                failure = (
                    http_error_key(status)
                    if errno == 0 or status >= 300
                    else (transport_error_key(errno, transfer.error_message))
                )
            record_failure(slot, transfer, failure, now)
            stats[slot.key].bytes += transfer.bytes
        if transfer in background:
            background.discard(transfer)
            if not ended_by:  # re-established at once, or after a pause when it failed
                delay = 0.0 if ok and failure is None else BACKGROUND_RETRY_PAUSE
                heapq.heappush(reopen, (now + delay, next(reopen_seq), slot.request_type))
            return
        completed += 1

    def send(request_type: RequestType, started: float) -> Transfer:
        nonlocal sent
        request = request_type.build()
        transfer = transport.start(request, _Slot(request_type, request.metrics_key), started)
        if request.response is ResponseHandling.STREAM:
            streams.add(transfer)
        sent += 1
        return transfer

    def send_background(request_type: RequestType, started: float) -> None:
        nonlocal sent, background_sent
        background.add(send(request_type, started))
        sent -= 1
        background_sent += 1

    def busy_slots() -> int:
        # background sessions are in flight or waiting to retry, but hold none of the slots
        if background or retries:
            return transport.in_flight + len(retries) - len(background)
        return transport.in_flight

    for instance in instances:
        if instance.background:
            for _ in range(instance.background_sessions()):
                heapq.heappush(reopen, (start, next(reopen_seq), instance))

    client = spec.client
    now = time.perf_counter()
    gc_threshold = gc.get_threshold()
    # Few objects per request live past it; collecting young objects every 700 allocations
    # would cost more CPU than it frees.
    gc.set_threshold(max(gc_threshold[0], 50_000), *gc_threshold[1:])
    try:
        while True:
            stopping = sent >= total or now >= deadline or settings.interrupted()
            if stopping and not ended_by:
                ended_by = (
                    "interrupted"
                    if settings.interrupted()
                    else "total"
                    if sent >= total
                    else "duration"
                )
                not_sent = len(pending)
                pending.clear()
                # A total counts whole requests, so its streams run to their end (each has its
                # own deadline); a duration or Ctrl-C ends the streams still open, and every
                # end closes the background sessions.
                reopen.clear()
                for transfer in [t for t in streams if ended_by != "total" or t in background]:
                    slot = transfer.tag
                    transport.abort(transfer)
                    streams.discard(transfer)
                    if slot.request_type.on_run_end(transfer.request, _state(transfer)):
                        transfer.stream_done = True
                        complete(transfer, now)
                    else:
                        record_failure(slot, transfer, "unknown/stream open at end of run", now)
                        if transfer in background:
                            background.discard(transfer)
                        else:
                            completed += 1
            wait = 0.05
            if not stopping:
                while reopen and reopen[0][0] <= now:
                    send_background(heapq.heappop(reopen)[2], now)
                if reopen:
                    wait = min(wait, reopen[0][0] - now)
                if not share_total:
                    pass  # only background sessions: they run until the duration ends
                elif open_loop:
                    while next_arrival <= now and arrivals < total and next_arrival < deadline:
                        pending.append(next_arrival)
                        arrivals += 1
                        next_arrival += rng.expovariate(spec.rate) if poisson else interval
                    while pending and busy_slots() < client:
                        intended = pending.popleft()
                        max_lag = max(max_lag, now - intended)
                        send(choose(), intended)
                    wait = min(wait, max(0.0, next_arrival - now))
                else:
                    while busy_slots() < client and sent < total:
                        if interval:
                            if now < next_allowed:
                                wait = min(wait, next_allowed - now)
                                break
                            max_lag = max(max_lag, now - next_allowed)
                            next_allowed = max(next_allowed, now - catch_up) + interval
                        send(choose(), now)
                        now = time.perf_counter()
            elif transport.in_flight == 0 and not retries:
                break
            elif settings.interrupted():
                break  # Ctrl-C: report what completed; in-flight requests are abandoned
            busy = busy_slots() >= client
            if busy and busy_since is None:
                busy_since = now
            elif not busy and busy_since is not None:
                busy_time += now - busy_since
                busy_since = None
            if retries:
                wait = min(wait, max(0.0, retries[0][0] - now))
            done = transport.poll(wait)
            if done:
                woke_at = transport.woke_at  # when the responses were there to be read
                for transfer in done:
                    complete(transfer, woke_at)
            now = time.perf_counter()
            while retries and retries[0][0] <= now:
                transport.resubmit(heapq.heappop(retries)[2])
            if settings.progress is not None and now - last_progress >= 1.0:
                last_progress = now
                settings.progress(sent, completed)
        end = time.perf_counter()
        cpu_seconds = time.process_time() - cpu_start
        if busy_since is not None:
            busy_time += end - busy_since
    finally:
        gc.set_threshold(*gc_threshold)
        transport.close()
        _cleanup(instances, setup_client)

    elapsed = end - start
    return SpecResult(
        stats=stats,
        error_stats=errors,
        duration=elapsed,
        sent=sent,
        configured_total=spec.total,
        rate=spec.rate,
        arrival=spec.arrival,
        not_sent=not_sent,
        max_send_lag=max_lag,
        busy_fraction=busy_time / elapsed if elapsed > 0 else 0.0,
        interrupted=ended_by == "interrupted",
        cpu_seconds=cpu_seconds,
        background_sent=background_sent,
        request_type_facts=[
            {"item": i, "type": instance.name, **facts}
            for i, instance in enumerate(instances)
            if (facts := instance.facts())
        ],
        raw_errors=raw_errors,
        ended_by=ended_by,
    )


def _state(transfer: Transfer) -> dict[str, Any]:
    """The per-request dict a streaming request type keeps its bookkeeping in."""
    if transfer.state is None:
        transfer.state = {}
    return transfer.state


def _plugin_error_key(request_type: RequestType, method: str, exc: Exception) -> str:
    # The exception's type only, not its message: error classes must stay few.
    return f"unknown/{request_type.name}.{method} raised {type(exc).__name__}"


def _cleanup(instances: list[RequestType], client: BlockingClient) -> None:
    """Every request type cleans up, even if an earlier one fails; the first error is raised."""
    first: BaseException | None = None
    for instance in instances:
        try:
            instance.cleanup(client)
        except Exception as exc:
            first = first or exc
    client.close()
    if first is not None:
        raise first
