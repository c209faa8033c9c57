"""The server's view of a run: the API server's own ``/metrics``, read before and after the run.

A ``kperf_run`` wrapper, and the observer runner-group servers ask for (``kperf_server_observer``).
It reads ``/metrics`` through the API with the run's own endpoint and credentials (no Prometheus
server), and adds the report's ``server`` section: the growth of the
server's counters and histograms over the run, per API call (verb, resource, scope — the classes
:mod:`kperf_core.api_calls` gives the client's keys) beside the client's figures, what API Priority
and Fairness did (dispatched, rejected by reason, queue wait, per priority level and flow schema),
objects in storage, and etcd request latency.

Metric names changed across Kubernetes releases; each figure takes the first name the server
exposes, and the report says which (``server.metrics``). A server that refuses ``/metrics`` to the
run's credentials costs one warning line and an ``unavailable`` reason, never the run.
``--no-server-metrics`` (or ``-p no:server-metrics``) switches the plugin off.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, ClassVar

import attrs
from kperf_plugins.server_metrics.exposition import (
    CounterReset,
    ExpositionError,
    HistogramDelta,
    Labels,
    Scrape,
    bucket_pairs,
    counter_delta,
    histogram_delta,
    merge_buckets,
)

from kperf_core import hookimpl
from kperf_core.api_calls import server_call
from kperf_core.errors import ClusterError
from kperf_core.report_model import (
    EtcdRequests,
    FlowControlLevel,
    ServerCall,
    ServerHistogram,
    ServerView,
    StoredObjects,
)
from kperf_core.server_view import ServerViewUnavailable

if TYPE_CHECKING:
    from kperf_core.engine import LoadRun
    from kperf_core.kube import ClusterEndpoint
    from kperf_core.report_model import Report

SOURCE = "GET /metrics"

REQUESTS = "apiserver_request_total"
LATENCY = "apiserver_request_duration_seconds"
#: The SLI histogram (v1.27+), its earlier name (v1.23-1.26); older servers have neither.
SLI = ("apiserver_request_sli_duration_seconds", "apiserver_request_slo_duration_seconds")
#: Objects in storage: v1.34+, v1.21-1.33, up to v1.21.
STORAGE = ("apiserver_resource_objects", "apiserver_storage_objects", "etcd_object_counts")
ETCD = "etcd_request_duration_seconds"
APF_DISPATCHED = "apiserver_flowcontrol_dispatched_requests_total"
APF_REJECTED = "apiserver_flowcontrol_rejected_requests_total"
APF_WAIT = "apiserver_flowcontrol_request_wait_duration_seconds"
FAMILIES = (REQUESTS, LATENCY, *SLI, *STORAGE, ETCD, APF_DISPATCHED, APF_REJECTED, APF_WAIT)

#: ``/metrics`` of a busy server is several MB; reading it must not fail a run for being slow.
SCRAPE_TIMEOUT = 60.0


def read_metrics(endpoint: ClusterEndpoint) -> Scrape:
    """One scrape of the server's ``/metrics`` with the run's credentials."""
    from kperf_core.engine.blocking_client import BlockingClient

    client = BlockingClient(endpoint, timeout=SCRAPE_TIMEOUT)
    try:
        status, body = client.request("GET", "/metrics")
    except ClusterError as exc:
        raise ServerViewUnavailable(str(exc)) from None
    finally:
        client.close()
    if status in (401, 403):
        raise ServerViewUnavailable(
            f"{SOURCE} answered HTTP {status}: the run's credentials may not read it (RBAC: "
            "verb get on nonResourceURL /metrics)"
        )
    if status != 200:
        raise ServerViewUnavailable(f"{SOURCE} answered HTTP {status}")
    try:
        return Scrape.parse(body.decode("utf-8", "replace"), FAMILIES)
    except ExpositionError as exc:
        raise ServerViewUnavailable(f"{SOURCE}: not the Prometheus text format: {exc}") from None


def _first(scrape: Scrape, names: tuple[str, ...]) -> str | None:
    return next((name for name in names if scrape.has(name)), None)


def _histogram(parts: list[HistogramDelta]) -> ServerHistogram:
    return ServerHistogram(
        count=sum(count for _, count, _ in parts),
        sum_seconds=sum(total for _, _, total in parts),
        buckets=bucket_pairs(merge_buckets(buckets for buckets, _, _ in parts)),
    )


def _call_key(labels: Labels) -> tuple[str, str, str] | None:
    """(verb, resource, scope) of a request series; None for non-resource URLs (/healthz, …)."""
    values = dict(labels)
    if not values.get("resource"):
        return None
    call = server_call(
        values.get("verb", ""),
        values.get("group", ""),
        values["resource"],
        values.get("subresource", ""),
        values.get("scope", ""),
    )
    return call.key


CallKey = tuple[str, str, str]


def _by_call(deltas: Mapping[Labels, HistogramDelta]) -> dict[CallKey, ServerHistogram]:
    grouped: dict[tuple[str, str, str], list[HistogramDelta]] = {}
    for labels, delta in deltas.items():
        key = _call_key(labels)
        if key is not None:
            grouped.setdefault(key, []).append(delta)
    return {key: _histogram(parts) for key, parts in grouped.items()}


def _calls(before: Scrape, after: Scrape, sli: str | None) -> tuple[ServerCall, ...]:
    codes: dict[tuple[str, str, str], dict[str, int]] = {}
    for labels, change in counter_delta(before, after, REQUESTS).items():
        key = _call_key(labels)
        if key is not None:
            per_code = codes.setdefault(key, {})
            code = dict(labels).get("code", "")
            per_code[code] = per_code.get(code, 0) + round(change)
    latency = _by_call(histogram_delta(before, after, LATENCY))
    sli_latency = _by_call(histogram_delta(before, after, sli)) if sli else {}
    return tuple(
        ServerCall(
            verb=key[0],
            resource=key[1],
            scope=key[2],
            count=sum(per_code.values()),
            codes=dict(sorted(per_code.items())),
            latency=latency.get(key),
            sli_latency=sli_latency.get(key),
        )
        for key, per_code in sorted(codes.items())
    )


def _flow_control(before: Scrape, after: Scrape) -> tuple[FlowControlLevel, ...]:
    def level(labels: Labels) -> tuple[str, str]:
        values = dict(labels)
        return values.get("priority_level", ""), values.get("flow_schema", "")

    dispatched: dict[tuple[str, str], int] = {}
    for labels, change in counter_delta(before, after, APF_DISPATCHED).items():
        dispatched[level(labels)] = dispatched.get(level(labels), 0) + round(change)
    rejected: dict[tuple[str, str], dict[str, int]] = {}
    for labels, change in counter_delta(before, after, APF_REJECTED).items():
        reasons = rejected.setdefault(level(labels), {})
        reason = dict(labels).get("reason", "")
        reasons[reason] = reasons.get(reason, 0) + round(change)
    waits: dict[tuple[str, str], list[HistogramDelta]] = {}
    for labels, delta in histogram_delta(before, after, APF_WAIT).items():
        # execute="false": the wait of requests that were then rejected, counted above.
        if dict(labels).get("execute", "true") == "true":
            waits.setdefault(level(labels), []).append(delta)
    return tuple(
        FlowControlLevel(
            priority_level=key[0],
            flow_schema=key[1],
            dispatched=dispatched.get(key, 0),
            rejected=dict(sorted(rejected.get(key, {}).items())),
            queue_wait=_histogram(waits[key]) if key in waits else None,
        )
        for key in sorted(dispatched.keys() | rejected.keys() | waits.keys())
    )


def _stored_objects(before: Scrape, after: Scrape, name: str | None) -> tuple[StoredObjects, ...]:
    """Resources whose count changed between the scrapes."""
    if name is None:
        return ()

    def counts(scrape: Scrape) -> dict[str, int]:
        found = {}
        for labels, value in scrape.samples.get(name, {}).items():
            values = dict(labels)
            group, resource = values.get("group", ""), values.get("resource", "")
            found[f"{group}/{resource}" if group else resource] = round(value)
        return found

    old, new = counts(before), counts(after)
    return tuple(
        StoredObjects(resource=resource, before=old.get(resource, 0), after=count)
        for resource, count in sorted(new.items())
        if count != old.get(resource, 0)
    )


def _etcd(before: Scrape, after: Scrape) -> tuple[EtcdRequests, ...]:
    grouped: dict[tuple[str, str], list[HistogramDelta]] = {}
    for labels, delta in histogram_delta(before, after, ETCD).items():
        values = dict(labels)
        if "type" in values:  # up to v1.2x: the Go type
            subject = values["type"]
        else:
            group, resource = values.get("group", ""), values.get("resource", "")
            subject = f"{group}/{resource}" if group else resource
        grouped.setdefault((values.get("operation", ""), subject), []).append(delta)
    return tuple(
        EtcdRequests(operation=operation, object=subject, latency=_histogram(parts))
        for (operation, subject), parts in sorted(grouped.items())
    )


def server_view(before: Scrape, after: Scrape) -> ServerView:
    """The report's ``server`` section from two scrapes around the run."""
    sli = _first(after, SLI)
    storage = _first(after, STORAGE)
    metrics = {"requests": REQUESTS, "latency": LATENCY}
    if sli:
        metrics["sliLatency"] = sli
    if storage:
        metrics["storedObjects"] = storage
    for figure, name in (
        ("etcdLatency", ETCD),
        ("flowControlDispatched", APF_DISPATCHED),
        ("flowControlRejected", APF_REJECTED),
        ("flowControlQueueWait", APF_WAIT),
    ):
        if after.has(name):
            metrics[figure] = name
    try:
        return ServerView(
            source=SOURCE,
            metrics=metrics,
            calls=_calls(before, after, sli),
            flow_control=_flow_control(before, after),
            stored_objects=_stored_objects(before, after, storage),
            etcd_requests=_etcd(before, after),
        )
    except CounterReset as exc:
        return ServerView(
            source=SOURCE, unavailable=f"the API server restarted during the run ({exc})"
        )


def unavailable(reason: str) -> ServerView:
    """The view that could not be taken, and a warning line saying why."""
    print(f"kperf: warning: no server view: {reason}", file=sys.stderr)
    return ServerView(source=SOURCE, unavailable=reason)


@attrs.frozen
class MetricsObserver:
    """A :class:`~kperf_core.server_view.ServerObserver` reading ``/metrics``: a snapshot is the
    lines of the families the view uses, gzip-compressed (some 50-100 KB of a 1-2 MB page)."""

    endpoint: ClusterEndpoint
    source: ClassVar[str] = SOURCE

    def snapshot(self) -> bytes:
        return gzip.compress(read_metrics(self.endpoint).text.encode())

    def view(self, before: bytes, after: bytes) -> ServerView:
        try:
            scrapes = [
                Scrape.parse(gzip.decompress(data).decode(), FAMILIES) for data in (before, after)
            ]
        except (OSError, EOFError, ExpositionError) as exc:
            return ServerView(source=SOURCE, unavailable=f"a snapshot is unreadable: {exc}")
        return server_view(*scrapes)


@hookimpl
def kperf_server_observer(endpoint: ClusterEndpoint) -> MetricsObserver:
    return MetricsObserver(endpoint)


@hookimpl(wrapper=True)
def kperf_run(run: LoadRun) -> Generator[None, Report, Report]:
    try:
        before = read_metrics(run.endpoint)
    except ServerViewUnavailable as exc:
        # Warn now, not after a long run: the user may want to stop and fix the credentials.
        view = unavailable(str(exc))
        report = yield
        return attrs.evolve(report, server=view)
    report = yield
    try:
        after = read_metrics(run.endpoint)
    except ServerViewUnavailable as exc:
        return attrs.evolve(report, server=unavailable(str(exc)))
    view = server_view(before, after)
    if view.unavailable:
        unavailable(view.unavailable)
    return attrs.evolve(report, server=view)
