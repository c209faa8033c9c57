"""SLO verdicts: classes, the built-in SIG-scalability thresholds, custom files and their errors."""

from __future__ import annotations

import pytest
from kperf_plugins.checks.slo import BUILTIN, SloCheckPlugin, load_thresholds
from report_factory import make_report

from kperf_core.errors import ConfigError


def _verdicts(latencies, source=None, failed=None):
    report = SloCheckPlugin(source).evaluate(make_report(latencies, failed))
    assert report.slo is not None
    return {c.name: c for c in report.slo.checks}, report.slo


def test_builtin_thresholds_per_verb_and_scope() -> None:
    fast, slow = [0.01] * 99, [0.01] * 97 + [40.0] * 3  # p99 0.01 s vs 40 s
    checks, slo = _verdicts(
        {
            "GET /api/v1/namespaces/ns/pods/p": [0.9] * 100,
            "LIST /api/v1/namespaces/ns/pods": [0.01] * 97 + [4.9] * 3,
            "LIST /apis/apps/v1/namespaces/ns/deployments": [0.01] * 97 + [5.5] * 3,
            "LIST /api/v1/pods": slow,
            "LIST /api/v1/nodes": [29.0] * 100,
            "PATCH /api/v1/namespaces/ns/configmaps/:name": [0.01] * 98 + [1.2] * 2,
            "POST /api/v1/namespaces/ns/configmaps": fast,
            "WATCH /api/v1/pods?watch=true": [300.0] * 10,
            "POD_LOG /api/v1/namespaces/ns/pods/p/log": [100.0] * 10,
            "POST /api/v1/namespaces/ns/pods/p/exec": [100.0] * 10,
        }
    )
    assert slo.source == BUILTIN
    verdict = {name: (c.passed, c.threshold_seconds) for name, c in checks.items()}
    assert verdict == {
        "GET pods (resource scope)": (True, 1.0),
        "LIST pods (namespace scope)": (True, 5.0),
        "LIST apps/deployments (namespace scope)": (False, 5.0),
        "LIST pods (cluster scope)": (False, 30.0),
        "LIST nodes (cluster scope)": (True, 30.0),
        "PATCH configmaps (resource scope)": (False, 1.0),
        "POST configmaps (resource scope)": (True, 1.0),
    }  # WATCH, pod logs and exec are not checked at all
    assert not slo.passed
    assert checks["LIST pods (cluster scope)"].value_seconds == pytest.approx(40.0, rel=0.01)
    assert checks["LIST pods (cluster scope)"].count == 100
    value = checks["LIST pods (cluster scope)"].value_seconds
    assert checks["LIST pods (cluster scope)"].outcome() == f"p99 {value:.6g} s > 30 s (100 calls)"


def test_keys_of_one_class_are_merged() -> None:
    checks, _ = _verdicts(
        {
            "GET /api/v1/namespaces/a/configmaps/x": [0.01] * 50,
            "GET /api/v1/namespaces/b/configmaps/y": [2.0] * 50,
        }
    )
    [check] = checks.values()
    assert check.count == 100 and not check.passed and len(check.keys) == 2


def test_a_class_without_one_successful_call_fails() -> None:
    checks, slo = _verdicts({}, failed={"GET /api/v1/namespaces/a/configmaps/x": 5})
    [check] = checks.values()
    assert check.value_seconds is None and not check.passed and not slo.passed
    assert check.outcome() == "p99: no successful call to measure (limit 1 s)"


def test_custom_thresholds_first_match_decides_and_unmatched_are_unchecked(tmp_path) -> None:
    path = tmp_path / "slo.yaml"
    path.write_text(
        "version: 1\nthresholds:\n"
        "- {verbs: [LIST], scopes: [cluster], resources: [pods], seconds: 0.05, percentile: 0.5}\n"
        "- {verbs: [LIST], seconds: 10}\n"
    )
    checks, slo = _verdicts(
        {
            "LIST /api/v1/pods": [0.06] * 10,
            "LIST /api/v1/nodes": [0.06] * 10,
            "GET /api/v1/namespaces/ns/pods/p": [100.0] * 10,
        },
        source=str(path),
    )
    assert slo.source == str(path)
    assert {n: (c.passed, c.percentile) for n, c in checks.items()} == {
        "LIST pods (cluster scope)": (False, 0.5),
        "LIST nodes (cluster scope)": (True, 0.99),
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "version: 1\nthresholds:\n- {verbs: [WATCH], seconds: 1}\n",
            "slo.yaml:3: thresholds[0].verbs: WATCH not allowed (allowed: DELETE, GET, LIST, "
            "PATCH, POST, PUT;",
        ),
        (
            "version: 1\nthresholds:\n- {seconds: 0}\n",
            "slo.yaml:3: thresholds[0].seconds: must be > 0 (got 0.0)",
        ),
        (
            "version: 1\nthresholds:\n- {seconds: 1, percentile: 0.98}\n",
            "slo.yaml:3: thresholds[0].percentile: must be one of 0.5, 0.9, 0.95, 0.99",
        ),
        (
            "version: 1\nthresholds:\n- seconds: 1\n  scope: [cluster]\n",
            "slo.yaml:4: thresholds[0].scope: unknown key (allowed: seconds, percentile, verbs, "
            "scopes, resources)",
        ),
        ("version: 2\nthresholds: []\n", "2 problems:"),
        ("thresholds: [\n", "slo.yaml:2: invalid YAML"),
        ("- 1\n", "slo.yaml: must be a YAML mapping"),
    ],
)
def test_a_bad_thresholds_file_names_line_and_path(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "slo.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_thresholds(str(path))
    assert str(caught.value).replace(str(tmp_path) + "/", "").startswith(message)


def test_a_missing_thresholds_file_is_one_line(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"--slo .*nope.yaml: cannot read: No such file"):
        load_thresholds(str(tmp_path / "nope.yaml"))
