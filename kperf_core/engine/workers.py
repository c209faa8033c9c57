"""Every core: ``--workers N`` engine processes share each spec and their results merge exactly.

One engine process is one thread on one core (libcurl's multi interface and the Python loop
around it); upstream's Go runner uses every core. With N workers the parent forks N processes that
run the specs in step (a barrier at each spec's start), each with an N-th of the spec: of its
``rate``, ``total``, ``client`` and ``conns`` and of the background sessions. Each worker prepares
and cleans up its own request types (a put's LIST is sent once per worker, and counted). Their
results merge exactly — histograms by adding buckets, counts and bytes by adding, errors, facts and
the requests outside the load by key — into one result per spec.

Ctrl-C reaches every process of the terminal's group; a SIGTERM to the parent alone (a pod being
deleted) is passed on to the workers, so every path ends with each worker's report merged.
"""

from __future__ import annotations

import collections
import math
import multiprocessing
import os
import signal
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import attrs

from kperf_core.engine.recorder import OutsideLoad, Progress, merge_connections, merge_facts
from kperf_core.engine.spec_runner import SpecResult, run_specs
from kperf_core.errors import KperfError
from kperf_core.kube import is_loopback
from kperf_core.metrics import KeyStats
from kperf_core.time_series import TimeSeries

if TYPE_CHECKING:
    from kperf_core.engine import LoadRun
    from kperf_core.profile import LoadProfile, LoadProfileSpec

#: Seconds a worker waits for the others at a spec's start before it gives up (one that died).
_BARRIER_TIMEOUT = 600.0


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, and a cgroup's CPU quota (a pod's limit),
    which ``os.cpu_count()`` — the node's cores — does not see."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()
    except (OSError, ValueError):
        return cores
    if quota == "max":
        return cores
    return max(1, min(cores, math.ceil(int(quota) / int(period))))


def worker_count(requested: int | None, profile: LoadProfile, server: str = "") -> int:
    """How many engine processes a run uses: ``requested`` or the cores available, at most one
    per ``client`` slot (and HTTP/2 connection, which cannot be split) of the smallest spec, and
    one per request of a spec's ``total``.

    By default one when the API server is on this machine (a loopback ``server`` URL): its cores
    are the server's too, and a second engine process only takes them from it — measured on the
    local control plane, 2 workers gave 0.73x the throughput of one (benchmarks/results).
    """
    if requested is None and is_loopback(server):
        return 1
    count = requested or available_cores()
    for spec in profile.specs:
        count = min(count, spec.client)
        if not spec.disable_http2:
            count = min(count, spec.conns)
        if spec.total > 0:
            count = min(count, spec.total)
    return max(1, count)


def _part(value: int, index: int, count: int) -> int:
    return value // count + (1 if index < value % count else 0)


def worker_spec(spec: LoadProfileSpec, index: int, count: int) -> LoadProfileSpec:
    """Worker ``index``'s share of ``spec`` (``worker_count`` keeps every share at least 1)."""
    if count == 1:
        return spec
    return attrs.evolve(
        spec,
        rate=spec.rate / count,
        total=_part(spec.total, index, count) if spec.total > 0 else 0,
        client=_part(spec.client, index, count),
        # HTTP/1.1 opens a connection per request in flight; ``conns`` only groups them
        conns=max(1, _part(spec.conns, index, count)),
    )


def merge_results(results: list[SpecResult], spec: LoadProfileSpec) -> SpecResult:
    """One spec's results from every worker, merged as if one process had measured them all."""
    stats: dict[str, KeyStats] = {}
    errors: collections.Counter[str] = collections.Counter()
    outside = OutsideLoad()
    for result in results:
        for key, key_stats in result.stats.items():
            stats.setdefault(key, KeyStats(key_stats.raw is not None)).merge(key_stats)
        errors.update(result.error_stats)
        outside.merge(result.outside)
    raw = [r.raw_errors for r in results if r.raw_errors is not None]
    by_item: dict[int, list[dict[str, Any]]] = {}
    for result in results:
        for facts in result.request_type_facts:
            by_item.setdefault(facts["item"], []).append(facts)
    parts = {part for r in results for part in r.connections}
    series = TimeSeries()
    for result in results:
        series.merge(result.series)
    return SpecResult(
        stats=stats,
        error_stats=errors,
        # side by side: the spec took as long as its slowest worker
        duration=max(r.duration for r in results),
        sent=sum(r.sent for r in results),
        configured_total=spec.total,
        rate=spec.rate,
        arrival=spec.arrival,
        not_sent=sum(r.not_sent for r in results),
        max_send_lag=max(r.max_send_lag for r in results),
        busy_fraction=max(r.busy_fraction for r in results),
        interrupted=any(r.interrupted for r in results),
        cpu_seconds=sum(r.cpu_seconds for r in results),
        raw_errors=[e for errors_of in raw for e in errors_of] if raw else None,
        ended_by=", ".join(sorted({r.ended_by for r in results})),
        request_type_facts=[merge_facts(by_item[item]) for item in sorted(by_item)],
        background_sent=sum(r.background_sent for r in results),
        outside=outside,
        connections={
            part: merge_connections([r.connections[part] for r in results if part in r.connections])
            for part in sorted(parts)
        },
        limits=[line for r in results for line in r.limits],
        workers=len(results),
        series=series,
    )


def run_in_workers(run: LoadRun, count: int) -> list[SpecResult]:
    """Run the profile in ``count`` forked engine processes; merge their results spec by spec."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(count)
    pipes: dict[int, Connection] = {}
    processes = []
    for index in range(count):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=_worker, args=(run, index, count, barrier, sender), daemon=True
        )
        process.start()
        sender.close()
        pipes[index] = receiver
        processes.append(process)
    per_worker: list[list[SpecResult]] = []
    failure: KperfError | None = None
    forwarded = False
    progress = _ProgressOfWorkers(run.settings.progress, count)
    try:
        while pipes:
            if run.settings.interrupted() and not forwarded:
                forwarded = True  # a SIGTERM to the parent alone: the workers stop too
                for process in processes:
                    if process.pid is not None and process.is_alive():
                        os.kill(process.pid, signal.SIGINT)
            for index, pipe in list(pipes.items()):
                if not pipe.poll(0.05):
                    continue
                try:
                    message = pipe.recv()
                except EOFError:
                    message = ("failed", f"engine worker {index} exited without a report", 1)
                if message[0] == "progress":
                    progress.received(index, message[1])
                    continue
                del pipes[index]
                if message[0] == "failed":
                    failure = failure or _error(message[1], message[2])
                    barrier.abort()  # the others stop waiting for it at the next spec
                else:
                    per_worker.append(message[1])
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
    if failure is not None:
        raise failure
    results = []
    for k, spec in enumerate(run.profile.specs):
        ran = [results_of[k] for results_of in per_worker if len(results_of) > k]
        if not ran:
            break
        results.append(merge_results(ran, spec))
    return results


class _ProgressOfWorkers:
    """The workers' progress, added up in the parent: each worker sends its spec's figures about
    once a second (a small message: counts and one histogram); once every worker has reported on
    the spec, each report shows the sum of every worker's latest."""

    def __init__(self, show: Callable[[Progress], None] | None, workers: int) -> None:
        self.show = show
        self.workers = workers
        self.latest: dict[int, Progress] = {}

    def received(self, index: int, progress: Progress) -> None:
        if self.show is None:
            return
        if any(p.spec < progress.spec for p in self.latest.values()):
            self.latest.clear()  # a new spec began: the previous spec's figures are over
        elif any(p.spec > progress.spec for p in self.latest.values()):
            return  # a late message of the previous spec
        self.latest[index] = progress
        if len(self.latest) == self.workers:
            self.show(Progress.combined(list(self.latest.values())))


def _error(message: str, exit_code: int) -> KperfError:
    error = KperfError(message)
    error.exit_code = exit_code  # the worker's error class decides, as without workers
    return error


def _worker(run: LoadRun, index: int, count: int, barrier: Any, sender: Connection) -> None:
    """A forked engine process: its share of every spec, in step with the others."""
    code = 0
    # A worker stops at the first signal, and a second one changes nothing: Ctrl-C reaches it
    # from the terminal and again from the parent, which passes signals on. The parent alone
    # aborts on a second Ctrl-C (and kills its workers).
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    try:
        settings = attrs.evolve(
            run.settings,
            seed=None if run.settings.seed is None else run.settings.seed + index,
            interrupted=stop.is_set,
            # the parent adds every worker's figures up and shows one line
            progress=None
            if run.settings.progress is None
            else lambda figures: sender.send(("progress", figures)),
            worker=(index, count),
        )
        specs = [worker_spec(spec, index, count) for spec in run.profile.specs]
        results = run_specs(
            specs,
            run.request_types,
            run.endpoint,
            settings,
            before_spec=lambda: barrier.wait(_BARRIER_TIMEOUT),
        )
        sender.send(("results", results))
    except threading.BrokenBarrierError:
        sender.send(("results", []))  # another worker failed: it says why
    except KperfError as exc:
        sender.send(("failed", str(exc), exc.exit_code))
        code = 1
    except BaseException as exc:  # a worker's bug: the parent says what it was, in one line
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
        sender.send(("failed", f"engine worker {index}: {type(exc).__name__}: {exc}{where}", 1))
        code = 1
    finally:
        sender.close()
        # neither atexit handlers nor the parent's stack (forked with it) run in a worker
        os._exit(code)
