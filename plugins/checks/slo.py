"""``--slo``: hold a run to the Kubernetes SIG-scalability API-call latency SLOs, or to your own.

Built in (sig-scalability/slos/api_call_latency.md): mutating calls (POST, PUT, PATCH, DELETE)
p99 ≤ 1 s; non-streaming reads (GET, LIST) p99 ≤ 1 s for one object (``resource`` scope), ≤ 5 s in
one namespace, ≤ 30 s across the cluster; watches, pod logs and exec/attach/proxy are excluded.
Each (resource, verb, scope) class is evaluated on the run's merged histogram of its keys — the
whole run, not SIG-scalability's 5-minute windows — over successful calls, as every kperf
percentile is. A class with calls but no successful one fails: there is no latency to vouch for.
With the server's view (:mod:`kperf_plugins.server_metrics`), the same classes and thresholds are
judged again on the API server's own histograms (``serverSlo``); a breach on either side fails.

``--slo FILE`` replaces the built-in thresholds with a YAML file; the first rule that matches a
class decides it, classes no rule matches are not checked::

    version: 1
    thresholds:
    - {verbs: [LIST], scopes: [cluster], resources: [pods], percentile: 0.99, seconds: 10}
    - {verbs: [POST, PUT, PATCH, DELETE], seconds: 0.5}
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from kperf_core import hookimpl
from kperf_core.api_calls import CLUSTER, MUTATING, NAMESPACE, READS, RESOURCE, ApiCall
from kperf_core.checks import ReportCheck
from kperf_core.errors import ConfigError
from kperf_core.metrics import PERCENTILES
from kperf_core.profile import InvalidField, one_of, positive
from kperf_core.report_model import Report, SloCheck, SloVerdicts

BUILTIN = "builtin"
CHECKED_VERBS = tuple(sorted(READS | MUTATING))
SCOPES = (RESOURCE, NAMESPACE, CLUSTER)


def _each_of(*allowed: str) -> Any:
    def validate(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        wrong = [v for v in value if v not in allowed]
        if wrong:
            raise InvalidField(
                attribute.name,
                f"{', '.join(map(str, wrong))} not allowed (allowed: {', '.join(allowed)}; "
                "streaming calls — WATCH, logs, exec, proxy — have no latency SLO)",
            )

    return validate


@attrs.frozen(kw_only=True)
class Threshold:
    """One rule: which classes it covers (all when a list is left out) and their limit."""

    seconds: float = attrs.field(validator=positive())
    percentile: float = attrs.field(
        default=0.99, validator=one_of(*(p for p in PERCENTILES if 0 < p < 1))
    )
    verbs: tuple[str, ...] = attrs.field(default=(), validator=_each_of(*CHECKED_VERBS))
    scopes: tuple[str, ...] = attrs.field(default=(), validator=_each_of(*SCOPES))
    resources: tuple[str, ...] = ()

    def covers(self, resource: str, verb: str, scope: str) -> bool:
        return (
            (not self.verbs or verb in self.verbs)
            and (not self.scopes or scope in self.scopes)
            and (not self.resources or resource in self.resources)
        )


def _non_empty(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value:
        raise InvalidField(attribute.name, "needs at least one threshold")


@attrs.frozen(kw_only=True)
class SloFile:
    version: int = attrs.field(validator=one_of(1))
    thresholds: tuple[Threshold, ...] = attrs.field(validator=_non_empty)


BUILTIN_THRESHOLDS = (
    Threshold(verbs=tuple(sorted(MUTATING)), seconds=1.0),
    Threshold(verbs=tuple(sorted(READS)), scopes=(RESOURCE,), seconds=1.0),
    Threshold(verbs=tuple(sorted(READS)), scopes=(NAMESPACE,), seconds=5.0),
    Threshold(verbs=tuple(sorted(READS)), scopes=(CLUSTER,), seconds=30.0),
)


def load_thresholds(path: str) -> tuple[Threshold, ...]:
    """Read a thresholds file; every problem is reported at once, each with its line and path."""
    # The profile loader's machinery: same YAML errors, same located messages, one converter style.
    from kperf_core.profile import _config_error, _problems_from, _read_yaml, make_converter
    from kperf_core.registry import Registry

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"--slo {path}: cannot read: {exc.strerror or exc}") from None
    document = _read_yaml(text, path)
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: must be a YAML mapping with `version` and `thresholds`")
    try:
        return make_converter(Registry("request type")).structure(document, SloFile).thresholds
    except Exception as exc:
        raise _config_error(_problems_from(exc, ()), document, path) from None


def _checkable(call: ApiCall) -> bool:
    return not call.streaming and call.verb in CHECKED_VERBS


def _judge(
    call: ApiCall,
    thresholds: tuple[Threshold, ...],
    count: int,
    quantile: Callable[[float], float | None],
    keys: tuple[str, ...],
) -> SloCheck | None:
    """One class's verdict; None when no rule covers it. ``quantile`` is only asked when ``count``
    is not zero; a class without a value fails: there is no latency to vouch for."""
    rule = next((t for t in thresholds if t.covers(call.resource, call.verb, call.scope)), None)
    if rule is None:
        return None
    value = quantile(rule.percentile) if count else None
    return SloCheck(
        resource=call.resource,
        verb=call.verb,
        scope=call.scope,
        percentile=rule.percentile,
        threshold_seconds=rule.seconds,
        value_seconds=value,
        count=count,
        passed=value is not None and value <= rule.seconds,
        keys=keys,
    )


def _verdicts(checks: list[SloCheck | None], source: str) -> SloVerdicts:
    kept = tuple(
        sorted((c for c in checks if c is not None), key=lambda c: (c.resource, c.verb, c.scope))
    )
    return SloVerdicts(source=source, passed=all(c.passed for c in kept), checks=kept)


def verdicts(report: Report, thresholds: tuple[Threshold, ...], source: str) -> SloVerdicts:
    """Evaluate every checkable (resource, verb, scope) class of the run's aggregate."""
    return _verdicts(
        [
            _judge(call, thresholds, t.histogram.count, t.histogram.quantile, tuple(t.keys))
            for call, t in report.aggregated.calls().items()
            if _checkable(call)
        ],
        source,
    )


def server_verdicts(
    report: Report, thresholds: tuple[Threshold, ...], source: str
) -> SloVerdicts | None:
    """The client's classes judged on the server's histograms: the SLI histogram where the server
    has one (SIG-scalability's definition: APF queue wait and webhooks excluded), else the request
    duration. A server percentile is its bucket's upper bound, so a verdict is exact when the
    threshold is one of the server's bucket bounds (the built-in 1, 5 and 30 s are, in every
    release); between bounds it errs towards a breach."""
    view = report.server
    if view is None or view.unavailable:
        return None
    rows = {row.key: row for row in view.calls}
    checks = []
    for call in report.aggregated.calls():
        if not _checkable(call):
            continue
        row = rows.get(call.key)
        histogram = row and (row.sli_latency or row.latency)
        metric = view.metrics.get("sliLatency" if row and row.sli_latency else "latency", "")
        series = f'{metric}{{verb="{call.verb}",resource="{call.resource}",scope="{call.scope}"}}'
        checks.append(
            _judge(
                call,
                thresholds,
                histogram.count if histogram else 0,
                histogram.quantile if histogram else lambda _q: None,
                (series,),
            )
        )
    return _verdicts(checks, source)


class SloCheckPlugin(ReportCheck):
    name = "slo"

    def __init__(self, source: str | None) -> None:
        super().__init__(source)
        self.thresholds = BUILTIN_THRESHOLDS if source is None else load_thresholds(source)

    def evaluate(self, report: Report) -> Report:
        source = self.source or BUILTIN
        return attrs.evolve(
            report,
            slo=verdicts(report, self.thresholds, source),
            server_slo=server_verdicts(report, self.thresholds, source),
        )


@hookimpl
def kperf_register_checks(registry):  # type: ignore[no-untyped-def]
    registry.add(SloCheckPlugin)
