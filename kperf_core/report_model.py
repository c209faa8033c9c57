"""The typed report: the JSON document ``kperf runner run`` writes, as frozen attrs classes.

:mod:`kperf_core.report` builds the document from engine results; this module reads and writes
it. Keys keep upstream's spelling and meaning (``perSpecResults``, ``aggregated``, ``total``,
``duration``, ``errorStats``, ``totalReceivedBytes``, ``percentileLatencies``,
``percentileLatenciesByURL``, ``latenciesByURL``, ``errors``) next to kperf's additions
(``requests``, ``requestsByURL``, ``latencyHistogramsByURL``, ``durationSeconds``, ``load``,
``requestTypeFacts``, ``timeSeries``, ``kperf``, ``slo``, ``server``, ``serverSlo``). A document
written by this module is the document read, byte for byte once rendered by :func:`render_json`.

Versions: ``kperf.reportFormat`` says which format a file is in. Within one format, changes are
additive only (DESIGN: "new facts go under new keys, never by changing the meaning of old ones"), so
keys this version does not know — a newer kperf's, or a plugin's — are **kept**: they are carried in
each object's ``extra`` and written back (at the end of their object), and what this version knows
stays usable. A document of another format, or one whose known keys have the wrong shape, is
refused with one error naming the file and the path.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from kperf_core.api_calls import ApiCall, classify
from kperf_core.errors import ConfigError
from kperf_core.metrics import PERCENTILES, LatencyHistogram
from kperf_core.time_series import TimeSeries

#: The format this version reads and writes. Bump it only when an existing key changes meaning.
REPORT_FORMAT = 1

T = TypeVar("T")

_EXTRA = "extra"


def _key(name: str) -> dict[str, str]:
    """Field metadata for a JSON key that is not the camelCase of the attribute name."""
    return {"json_key": name}


def _extra() -> Any:
    # Keys of the same format this version does not know, kept in order and written back.
    return attrs.field(factory=dict, kw_only=True, eq=False, repr=False)


def json_key(attribute: attrs.Attribute[Any]) -> str:
    if "json_key" in attribute.metadata:
        return str(attribute.metadata["json_key"])
    head, *rest = attribute.name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# -------------------------------------------------------------------------------------------------
# Models
# -------------------------------------------------------------------------------------------------

#: ``[[0, min], [0.5, p50], [0.9, p90], [0.95, p95], [0.99, p99], [1, max]]`` in seconds.
Percentiles = tuple[tuple[float, float], ...]


@attrs.frozen
class RequestCounts:
    """``requests``: what the engine sent and how it ended."""

    sent: int
    #: Sessions of background request types (watches) that ran beside the load.
    background_sent: int
    succeeded: int
    failed: int
    not_sent: int
    extra: Mapping[str, Any] = _extra()


@attrs.frozen
class KeyCounts:
    """One ``requestsByURL`` entry."""

    succeeded: int
    failed: int
    received_bytes: int
    extra: Mapping[str, Any] = _extra()


@attrs.frozen
class LoadFacts:
    """``load``: the arrival model, offered vs achieved rate, and what limited the client."""

    arrival: str
    offered_rate: float
    send_rate: float
    achieved_rate: float
    ended_by: str
    max_send_lag_seconds: float
    busy_fraction: float
    client_cpu_seconds: float
    client_cpu_utilization: float
    client_saturated: bool
    concurrency_limited: bool
    extra: Mapping[str, Any] = _extra()


@attrs.frozen(kw_only=True)
class Metrics:
    """Upstream's ``RunnerMetricReport`` plus kperf's facts: the ``aggregated`` section."""

    total: int
    duration: str
    error_stats: Mapping[str, int] = attrs.field(factory=dict)
    total_received_bytes: int
    percentile_latencies: Percentiles | None = None
    percentile_latencies_by_url: Mapping[str, Percentiles] | None = attrs.field(
        default=None, metadata=_key("percentileLatenciesByURL")
    )
    #: ``--raw-data`` only.
    latencies_by_url: Mapping[str, tuple[float, ...]] | None = attrs.field(
        default=None, metadata=_key("latenciesByURL")
    )
    #: ``--raw-data`` only: upstream's ResponseError objects, as the engine wrote them.
    errors: tuple[Mapping[str, Any], ...] | None = None
    requests_by_url: Mapping[str, KeyCounts] = attrs.field(metadata=_key("requestsByURL"))
    latency_histograms_by_url: Mapping[str, LatencyHistogram] = attrs.field(
        metadata=_key("latencyHistogramsByURL")
    )
    duration_seconds: float
    requests: RequestCounts
    extra: Mapping[str, Any] = _extra()

    def overall_histogram(self) -> LatencyHistogram:
        """Every key's latencies in one histogram (what ``percentileLatencies`` comes from)."""
        merged = LatencyHistogram()
        for histogram in self.latency_histograms_by_url.values():
            merged.merge(histogram)
        return merged

    def calls(self) -> dict[ApiCall, CallTotals]:
        """The keys grouped by the API call they make (verb, resource, scope), as SLO classes and
        the server's view group them."""
        grouped: dict[ApiCall, CallTotals] = {}
        for key, counts in self.requests_by_url.items():
            totals = grouped.setdefault(classify(key), CallTotals())
            totals.keys.append(key)
            totals.requests += counts.succeeded + counts.failed
            if key in self.latency_histograms_by_url:
                totals.histogram.merge(self.latency_histograms_by_url[key])
        return grouped


@attrs.define
class CallTotals:
    """One API call's keys of a run, merged: what :meth:`Metrics.calls` returns."""

    keys: list[str] = attrs.Factory(list)
    #: Requests that got an answer or failed (succeeded + failed).
    requests: int = 0
    #: Latencies of the successful ones.
    histogram: LatencyHistogram = attrs.Factory(LatencyHistogram)


@attrs.frozen(kw_only=True)
class SpecMetrics(Metrics):
    """One ``perSpecResults`` item: the aggregated shape plus how the spec's load went."""

    load: LoadFacts
    #: Facts request types report about themselves (watch event delays, …); plugin-defined JSON.
    request_type_facts: tuple[Any, ...] | None = None
    #: Per-window successes, failures and latencies of each key (absent in older reports).
    time_series: TimeSeries | None = None


@attrs.frozen
class RunFacts:
    """``kperf``: who measured, against what."""

    version: str
    server: str
    server_version: str
    seed: int | None
    interrupted: bool
    report_format: int
    extra: Mapping[str, Any] = _extra()


@attrs.frozen
class SloCheck:
    """One SLO class's verdict: its p-th percentile against its threshold."""

    resource: str
    verb: str
    scope: str
    percentile: float
    threshold_seconds: float
    #: Measured; None when no call of the class succeeded (the class then fails).
    value_seconds: float | None
    count: int
    passed: bool
    #: The report's keys the class was computed from.
    keys: tuple[str, ...]
    extra: Mapping[str, Any] = _extra()

    @property
    def name(self) -> str:
        return f"{self.verb} {self.resource} ({self.scope} scope)"

    def outcome(self) -> str:
        """``p99 0.0123 s <= 1 s (412 calls)``: the sentence a CI page or a breach shows."""
        quantile = f"p{round(self.percentile * 100)}"
        limit = f"{self.threshold_seconds:.6g} s"
        if self.value_seconds is None:
            return f"{quantile}: no successful call to measure (limit {limit})"
        relation = "<=" if self.passed else ">"
        return f"{quantile} {self.value_seconds:.6g} s {relation} {limit} ({self.count} calls)"


@attrs.frozen
class SloVerdicts:
    """``slo``: the SLO checks a run was held to (``--slo``)."""

    #: ``builtin`` (SIG-scalability's API-call SLOs) or the thresholds file's path.
    source: str
    passed: bool
    checks: tuple[SloCheck, ...]
    extra: Mapping[str, Any] = _extra()

    @property
    def failures(self) -> tuple[SloCheck, ...]:
        return tuple(c for c in self.checks if not c.passed)


#: A server histogram's bucket: its upper bound in seconds (None: +Inf) and its count.
Bucket = tuple[float | None, int]


@attrs.frozen
class ServerHistogram:
    """How one of the API server's histograms grew over the run (after - before scrape).

    ``buckets`` are the non-empty buckets, not cumulative, in bound order. The server only keeps
    bucket counts, so a percentile is known up to its bucket: :meth:`quantile` returns the bucket's
    upper bound (the true value is at most that), None when it lies above the largest bound.
    """

    count: int
    sum_seconds: float
    buckets: tuple[Bucket, ...]
    extra: Mapping[str, Any] = _extra()

    def quantile(self, q: float) -> float | None:
        if self.count == 0:
            raise ValueError("empty histogram")
        rank = max(1, math.ceil(self.count * q))
        seen = 0
        for bound, n in self.buckets:
            seen += n
            if seen >= rank:
                return bound
        return None

    def percentiles(self) -> Percentiles:
        """Upstream's ``[[p, seconds], …]`` pairs as upper bounds (p0 is unknowable: omitted)."""
        pairs = [(p, self.quantile(p)) for p in PERCENTILES if p > 0] if self.count else []
        return tuple((p, value) for p, value in pairs if value is not None)


@attrs.frozen
class ServerCall:
    """The server's count and latency of one API call (verb, resource, scope) during the run.

    Every client's requests are counted, not only kperf's: the run's own namespace makes a class
    the run's alone.
    """

    verb: str
    resource: str
    scope: str
    #: ``apiserver_request_total``: every answer, per HTTP code.
    count: int
    codes: Mapping[str, int]
    #: ``apiserver_request_duration_seconds``, every code (the client's percentiles cover only
    #: successful calls).
    latency: ServerHistogram | None = None
    #: The SLI histogram (``apiserver_request_sli_duration_seconds``: APF queue wait and webhooks
    #: excluded), when the server exposes one.
    sli_latency: ServerHistogram | None = None
    extra: Mapping[str, Any] = _extra()

    @property
    def failed(self) -> int:
        """Answers with a code of 400 or more (the client counts those as failures too)."""
        return sum(n for code, n in self.codes.items() if not code.isdigit() or int(code) >= 400)

    @property
    def key(self) -> tuple[str, str, str]:
        """(verb, resource, scope): how a client class (:class:`ApiCall`) finds its server row."""
        return (self.verb, self.resource, self.scope)


@attrs.frozen
class FlowControlLevel:
    """What API Priority and Fairness did to one flow schema's requests at one priority level."""

    priority_level: str
    flow_schema: str
    #: ``apiserver_flowcontrol_dispatched_requests_total``: requests let through.
    dispatched: int
    #: ``apiserver_flowcontrol_rejected_requests_total`` per reason (queue-full,
    #: concurrency-limit, time-out, cancelled).
    rejected: Mapping[str, int] = attrs.field(factory=dict)
    #: ``apiserver_flowcontrol_request_wait_duration_seconds`` of the requests that then ran.
    queue_wait: ServerHistogram | None = None
    extra: Mapping[str, Any] = _extra()


@attrs.frozen
class StoredObjects:
    """Objects of one resource in storage at the two scrapes (a gauge the server refreshes about
    once a minute, so "after" may lag the run)."""

    resource: str
    before: int
    after: int
    extra: Mapping[str, Any] = _extra()


@attrs.frozen
class EtcdRequests:
    """``etcd_request_duration_seconds`` of one operation on one kind of object during the run."""

    operation: str
    #: ``configmaps`` / ``apps/deployments`` (current servers) or ``*core.ConfigMap`` (v1.2x).
    object: str
    latency: ServerHistogram
    extra: Mapping[str, Any] = _extra()


@attrs.frozen(kw_only=True)
class ServerView:
    """``server``: the API server's own metrics, scraped before and after the run."""

    #: The server's ``/metrics`` as read, or why it could not be (then every list is empty).
    source: str
    unavailable: str | None = None
    #: The metric names this server exposed for each figure (they changed across releases).
    metrics: Mapping[str, str] = attrs.field(factory=dict)
    calls: tuple[ServerCall, ...] = ()
    flow_control: tuple[FlowControlLevel, ...] = ()
    stored_objects: tuple[StoredObjects, ...] = ()
    etcd_requests: tuple[EtcdRequests, ...] = ()
    extra: Mapping[str, Any] = _extra()


@attrs.frozen(kw_only=True)
class Report:
    """``kperf runner run``'s document (upstream's ``MultiSpecRunnerMetricReport`` + kperf's)."""

    per_spec_results: tuple[SpecMetrics, ...]
    aggregated: Metrics
    kperf: RunFacts
    slo: SloVerdicts | None = None
    server: ServerView | None = None
    #: The same SLO classes judged on the server's histograms (``--slo`` with the server view).
    server_slo: SloVerdicts | None = None
    extra: Mapping[str, Any] = _extra()


# -------------------------------------------------------------------------------------------------
# Conversion
# -------------------------------------------------------------------------------------------------


class ReportError(ConfigError):
    """A report file that cannot be read: unreadable, not JSON, another format, wrong shape."""


def _number(value: Any, _type: Any) -> float:
    # JSON has one number type; keep an int an int so that the document renders unchanged.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"must be a number (got {value!r})")
    return value


def _scalar(tp: type[T]) -> Callable[[Any, Any], T]:
    def structure(value: Any, _type: Any) -> T:
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            names = {int: "an integer", str: "a string", bool: "true or false"}
            raise TypeError(f"must be {names.get(tp, tp.__name__)} (got {value!r})")
        return value

    return structure


def _from_dict(cl: Any, what: str) -> Callable[[Any, Any], Any]:
    """A structure hook for a class that reads itself (``cl.from_dict``): every problem is a
    ValueError saying what the value is not."""

    def structure(value: Any, _type: Any) -> Any:
        if not isinstance(value, Mapping):
            raise TypeError(f"must be a {what} object (got {value!r})")
        try:
            return cl.from_dict(value)
        except KeyError as exc:
            raise ValueError(f"{what} without {exc.args[0]!r}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a {what}: {exc}") from None

    return structure


def make_converter() -> cattrs.Converter:
    """The report converter: JSON keys, unknown keys kept in ``extra``, strict scalars."""
    # Tuples (frozen models) become JSON arrays, as the engine's lists were.
    converter = cattrs.Converter(
        forbid_extra_keys=True, omit_if_default=True, unstruct_collection_overrides={tuple: list}
    )
    converter.register_structure_hook(float, _number)
    for scalar in (int, str, bool):
        converter.register_structure_hook(scalar, _scalar(scalar))
    converter.register_structure_hook(LatencyHistogram, _from_dict(LatencyHistogram, "histogram"))
    converter.register_unstructure_hook(LatencyHistogram, lambda h: h.to_dict())
    converter.register_structure_hook(TimeSeries, _from_dict(TimeSeries, "time series"))
    converter.register_unstructure_hook(TimeSeries, lambda s: s.to_dict())
    # Plugin-defined facts and raw errors are plain JSON: pass them through unchanged.
    converter.register_structure_hook(Any, lambda v, _t: v)

    def structure_factory(cl: type[Any]) -> Callable[[Any, Any], Any]:
        attrs.resolve_types(cl)
        fields = [a for a in attrs.fields(cl) if a.name != _EXTRA]
        keys = {json_key(a) for a in fields}
        fn = make_dict_structure_fn(
            cl,
            converter,
            _cattrs_forbid_extra_keys=True,
            _cattrs_detailed_validation=True,
            **{a.name: override(rename=json_key(a)) for a in fields},  # type: ignore[arg-type]
            extra=override(omit=True),
        )

        def structure(value: Any, tp: Any) -> Any:
            if not isinstance(value, Mapping):
                raise TypeError(f"must be an object (got {value!r})")
            known = {k: v for k, v in value.items() if k in keys}
            extra = {k: v for k, v in value.items() if k not in keys}
            result = fn(known, tp)
            return attrs.evolve(result, extra=extra) if extra else result

        return structure

    def unstructure_factory(cl: type[Any]) -> Callable[[Any], Any]:
        attrs.resolve_types(cl)
        fields = [a for a in attrs.fields(cl) if a.name != _EXTRA]
        fn = make_dict_unstructure_fn(
            cl,
            converter,
            _cattrs_omit_if_default=True,
            **{a.name: override(rename=json_key(a)) for a in fields},  # type: ignore[arg-type]
            extra=override(omit=True),
        )

        order = [json_key(a) for a in fields]

        def unstructure(value: Any) -> dict[str, Any]:
            # cattrs emits omittable fields last; the document keeps the class's field order.
            generated = fn(value)
            document = {key: generated[key] for key in order if key in generated}
            document.update(value.extra)
            return document

        return unstructure

    converter.register_structure_hook_factory(attrs.has, structure_factory)
    converter.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    return converter


_CONVERTER = make_converter()


def _path_text(path: list[str | int]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not part.isidentifier():
            text += f"[{json.dumps(part)}]"  # a metrics key: "LIST https://…"
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


def _first_problem(exc: BaseException, cl: type[Any] | None, path: list[str | int]) -> str:
    """The first problem of cattrs' exception group, with its JSON path."""
    if isinstance(exc, cattrs.ClassValidationError | cattrs.IterableValidationError):
        owner = getattr(exc, "cl", cl)
        for sub in exc.exceptions:
            sub_path = list(path)
            sub_cl = owner
            for note in getattr(sub, "__notes__", []):
                if isinstance(note, cattrs.AttributeValidationNote):
                    field = (
                        attrs.fields_dict(owner).get(note.name)
                        if isinstance(owner, type) and attrs.has(owner)
                        else None
                    )
                    sub_path.append(json_key(field) if field is not None else note.name)
                    sub_cl = note.type if isinstance(note.type, type) else None
                elif isinstance(note, cattrs.IterableValidationNote):
                    sub_path.append(note.index)
            return _first_problem(sub, sub_cl, sub_path)
    if isinstance(exc, KeyError):
        return f"{_path_text(path)}: required"
    # cattrs' own wording for a wrong container ("'int' object is not iterable") says how it
    # failed, not what was expected.
    if isinstance(exc, TypeError) and "is not iterable" in str(exc):
        return f"{_path_text(path)}: must be a list"
    if isinstance(exc, AttributeError) and "items" in str(exc):
        return f"{_path_text(path)}: must be an object"
    return f"{_path_text(path)}: {exc}"


def report_from_document(document: Any, source: str) -> Report:
    """Read a report document; ``source`` (a file name) starts every error message."""
    if not isinstance(document, Mapping):
        raise ReportError(f"{source}: not a kperf report (a JSON object is expected)")
    facts = document.get("kperf")
    found = facts.get("reportFormat") if isinstance(facts, Mapping) else None
    if found != REPORT_FORMAT:
        what = (
            "no kperf.reportFormat (a report of upstream kperf, or of kperf before 0.1?)"
            if found is None
            else f"kperf.reportFormat is {found!r}"
        )
        raise ReportError(f"{source}: {what}; this kperf reads report format {REPORT_FORMAT}")
    try:
        return _CONVERTER.structure(document, Report)
    except Exception as exc:
        raise ReportError(f"{source}: {_first_problem(exc, Report, [])}") from None


def typed_run_report(document: Mapping[str, Any]) -> Report:
    """A report a kperf command just built from its measurements, typed. A failure here is a
    kperf bug, and must not cost the measurements: the untyped document goes to stdout first."""
    try:
        return report_from_document(document, "the run's report")
    except ReportError as exc:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        raise ReportError(f"{exc} (a kperf bug; the untyped report went to stdout)") from None


def report_to_document(report: Report) -> dict[str, Any]:
    document: dict[str, Any] = _CONVERTER.unstructure(report)
    return document


def section_to_document(section: Any) -> Any:
    """One section of the model (a :class:`ServerView`, …) as its JSON document, for plugins that
    add their facts to the report a ``kperf_run`` wrapper returns."""
    return _CONVERTER.unstructure(section)


def render_json(report: Report) -> str:
    """The JSON file as ``kperf runner run`` has always written it (2-space indent, newline)."""
    return json.dumps(report_to_document(report), indent=2) + "\n"


def load_report(path: str | Path) -> Report:
    """Read a report file; every problem is one :class:`ReportError` naming the file."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    return report_from_document(document, str(path))
