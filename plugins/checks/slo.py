"""``--slo``: hold a run to the Kubernetes SIG-scalability API-call latency SLOs, or to your own.

Built in (sig-scalability/slos/api_call_latency.md): mutating calls (POST, PUT, PATCH, DELETE)
p99 ≤ 1 s; non-streaming reads (GET, LIST) p99 ≤ 1 s for one object (``resource`` scope), ≤ 5 s in
one namespace, ≤ 30 s across the cluster; watches, pod logs and exec/attach/proxy are excluded.
Each (resource, verb, scope) class is evaluated on the run's merged histogram of its keys — the
whole run, not SIG-scalability's 5-minute windows — over successful calls, as every kperf
percentile is. A class with calls but no successful one fails: there is no latency to vouch for.

``--slo FILE`` replaces the built-in thresholds with a YAML file; the first rule that matches a
class decides it, classes no rule matches are not checked::

    version: 1
    thresholds:
    - {verbs: [LIST], scopes: [cluster], resources: [pods], percentile: 0.99, seconds: 10}
    - {verbs: [POST, PUT, PATCH, DELETE], seconds: 0.5}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from kperf_core import hookimpl
from kperf_core.api_calls import CLUSTER, MUTATING, NAMESPACE, READS, RESOURCE, classify
from kperf_core.checks import ReportCheck
from kperf_core.errors import ConfigError
from kperf_core.metrics import PERCENTILES, LatencyHistogram
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


def verdicts(report: Report, thresholds: tuple[Threshold, ...], source: str) -> SloVerdicts:
    """Evaluate every checkable (resource, verb, scope) class of the run's aggregate."""
    metrics = report.aggregated
    classes: dict[tuple[str, str, str], tuple[LatencyHistogram, list[str]]] = {}
    for key in metrics.requests_by_url:
        call = classify(key)
        if call.streaming or call.verb not in CHECKED_VERBS:
            continue
        histogram, keys = classes.setdefault(
            (call.resource, call.verb, call.scope), (LatencyHistogram(), [])
        )
        keys.append(key)
        if key in metrics.latency_histograms_by_url:
            histogram.merge(metrics.latency_histograms_by_url[key])
    checks = []
    for (resource, verb, scope), (histogram, keys) in sorted(classes.items()):
        rule = next((t for t in thresholds if t.covers(resource, verb, scope)), None)
        if rule is None:
            continue
        value = histogram.quantile(rule.percentile) if histogram.count else None
        checks.append(
            SloCheck(
                resource=resource,
                verb=verb,
                scope=scope,
                percentile=rule.percentile,
                threshold_seconds=rule.seconds,
                value_seconds=value,
                count=histogram.count,
                passed=value is not None and value <= rule.seconds,
                keys=tuple(keys),
            )
        )
    return SloVerdicts(source=source, passed=all(c.passed for c in checks), checks=tuple(checks))


class SloCheckPlugin(ReportCheck):
    name = "slo"

    def __init__(self, source: str | None) -> None:
        super().__init__(source)
        self.thresholds = BUILTIN_THRESHOLDS if source is None else load_thresholds(source)

    def evaluate(self, report: Report) -> Report:
        return attrs.evolve(report, slo=verdicts(report, self.thresholds, self.source or BUILTIN))


@hookimpl
def kperf_register_checks(registry):  # type: ignore[no-untyped-def]
    registry.add(SloCheckPlugin)
