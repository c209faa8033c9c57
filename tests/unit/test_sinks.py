"""Sinks: the contract, delivery to several at once, and each built-in sink's content (golden)."""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from kperf_plugins.checks.slo import SloCheckPlugin
from kperf_plugins.sinks.csv import render_csv
from kperf_plugins.sinks.html import render_html
from kperf_plugins.sinks.junit import render_junit
from kperf_plugins.sinks.prometheus import push_url, render_metrics
from report_factory import make_report, with_time_series

from kperf_core import hookimpl
from kperf_core.errors import ConfigError
from kperf_core.plugin_manager import KperfPluginManager
from kperf_core.report_model import Report, load_report, render_json
from kperf_core.sinks import Sink, SinkError, SinkTarget, deliver, parse_targets

GOLDEN = Path(__file__).parents[1] / "data" / "sinks"
REPORTS = Path(__file__).parents[1] / "data" / "reports"


def golden_report() -> Report:
    """Two keys, one of which breaches its SLO (PATCH p99 1.5 s > 1 s), and 2 failures."""
    report = make_report(
        {
            "LIST /api/v1/namespaces/ns/configmaps?timeout=1m0s": [0.010, 0.020, 0.030, 0.040],
            "PATCH /api/v1/namespaces/ns/configmaps/:name?timeout=1m0s": [0.5, 1.5],
        },
        failed={"PATCH /api/v1/namespaces/ns/configmaps/:name?timeout=1m0s": 2},
        seconds=2.0,
    )
    report = with_time_series(
        report,
        {
            "LIST /api/v1/namespaces/ns/configmaps?timeout=1m0s": [[0.010, 0.020], [0.030, 0.040]],
            "PATCH /api/v1/namespaces/ns/configmaps/:name?timeout=1m0s": [[0.5], [1.5]],
        },
        {"PATCH /api/v1/namespaces/ns/configmaps/:name?timeout=1m0s": [1, 1]},
    )
    return SloCheckPlugin(None).evaluate(report)


@pytest.fixture
def pm() -> KperfPluginManager:
    return KperfPluginManager(autoload=False)


@pytest.mark.parametrize(
    ("render", "golden"),
    [(render_csv, "report.csv"), (render_junit, "report.junit.xml"), (render_metrics, "report.om")],
)
def test_sink_content_matches_golden(render, golden: str) -> None:
    assert render(golden_report()) == (GOLDEN / golden).read_text()


def test_csv_has_one_row_per_key_and_spec_plus_the_aggregate_then_the_windows() -> None:
    every = list(csv.DictReader(io.StringIO(render_csv(golden_report()))))
    rows = [r for r in every if not r["windowStartSeconds"]]
    windows = [r for r in every if r["windowStartSeconds"]]
    assert [(r["spec"], r["method"], r["windowStartSeconds"]) for r in windows] == [
        ("0", "LIST", "0.0"),
        ("0", "LIST", "1.0"),
        ("0", "PATCH", "0.0"),
        ("0", "PATCH", "1.0"),
    ]
    for row in rows[:2]:  # a key's windows add up to its spec's row
        mine = [w for w in windows if w["method"] == row["method"]]
        assert sum(int(w["succeeded"]) for w in mine) == int(row["succeeded"])
        assert sum(int(w["failed"]) for w in mine) == int(row["failed"])
    assert [(r["spec"], r["method"], r["scope"]) for r in rows] == [
        ("0", "LIST", "namespace"),
        ("0", "PATCH", "resource"),
        ("aggregated", "LIST", "namespace"),
        ("aggregated", "PATCH", "resource"),
    ]
    patch = rows[1]
    assert (patch["succeeded"], patch["failed"], patch["throughput"]) == ("2", "2", "1.0")
    assert float(patch["p100Seconds"]) == 1.5  # the exact maximum


def test_junit_has_one_case_per_slo_check_and_fails_the_breach() -> None:
    root = ET.fromstring(render_junit(golden_report()))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert set(cases) == {"LIST configmaps (namespace scope)", "PATCH configmaps (resource scope)"}
    failure = cases["PATCH configmaps (resource scope)"].find("failure")
    assert failure is not None and failure.get("message", "").endswith("> 1 s (2 calls)")
    assert cases["LIST configmaps (namespace scope)"].find("failure") is None
    assert root.get("tests") == "2" and root.get("failures") == "1"


def test_junit_without_slo_is_an_empty_suite_that_says_why() -> None:
    root = ET.fromstring(render_junit(make_report({"LIST /api/v1/pods": [0.1]})))
    assert root.get("tests") == "0"
    [slo] = [p for p in root.iter("property") if p.get("name") == "slo"]
    assert slo.get("value") == "not evaluated (run with --slo)"


def test_openmetrics_counts_and_quantiles_come_from_the_report() -> None:
    report = golden_report()
    text = render_metrics(report)
    assert text.endswith("# EOF\n")
    assert "# TYPE kperf_requests counter" in text
    line = (
        'kperf_requests_total{method="PATCH",url="/api/v1/namespaces/ns/configmaps/:name?'
        'timeout=1m0s",resource="configmaps",scope="resource",outcome="failed"} 2'
    )
    assert line in text.splitlines()
    assert 'kperf_slo_passed{resource="configmaps",verb="PATCH",scope="resource"} 0' in text


def test_the_push_rendering_is_text_0_0_4() -> None:
    text = render_metrics(golden_report(), openmetrics=False)
    assert "# TYPE kperf_requests_total counter" in text
    assert "# EOF" not in text and "# UNIT" not in text


@pytest.mark.parametrize(
    ("destination", "url"),
    [
        ("http://127.0.0.1:9091", "http://127.0.0.1:9091/metrics/job/kperf"),
        ("http://pg:9091/", "http://pg:9091/metrics/job/kperf"),
        ("http://pg:9091/metrics/job/ci/branch/main", "http://pg:9091/metrics/job/ci/branch/main"),
    ],
)
def test_push_url(destination: str, url: str) -> None:
    assert push_url(destination) == url


def test_json_sink_is_the_document_as_the_runner_wrote_it(pm, tmp_path) -> None:
    path = REPORTS / "errors-raw-watch.json"
    target = tmp_path / "deep" / "r.json"
    assert deliver(load_report(path), [SinkTarget("json", str(target))], pm.sinks) == []
    assert target.read_text() == json.dumps(json.loads(path.read_text()), indent=2) + "\n"


def test_targets_parse_and_result_is_the_json_sink(pm) -> None:
    assert parse_targets(["csv:a.csv", "prometheus:http://pg:9091"], pm.sinks, Path("r.json")) == [
        SinkTarget("csv", "a.csv"),
        SinkTarget("prometheus", "http://pg:9091"),
        SinkTarget("json", "r.json"),
    ]
    assert parse_targets([], pm.sinks) == [SinkTarget("json", None)]


def test_unknown_sink_is_refused_before_a_run_naming_the_known_ones(pm) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_targets(["xml:out.xml"], pm.sinks)
    assert str(caught.value) == (
        "--sink xml:out.xml: unknown sink 'xml' (known: csv, html, json, junit, prometheus)"
    )


def test_two_sinks_on_stdout_are_refused(pm) -> None:
    with pytest.raises(ConfigError, match="only one sink may write to stdout"):
        parse_targets(["csv", "junit"], pm.sinks)


def test_a_failing_sink_is_one_line_and_the_others_still_write(pm, tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    targets = [
        SinkTarget("csv", str(blocker / "r.csv")),  # a directory that is a file
        SinkTarget("nosuch", str(tmp_path / "x")),
        SinkTarget("junit", str(tmp_path / "r.xml")),
    ]
    failures = deliver(golden_report(), targets, pm.sinks)
    assert failures[0] == (
        f"sink csv:{blocker}/r.csv: cannot create the directory {blocker}: File exists"
    )
    assert failures[1].startswith("sink nosuch:")
    assert (tmp_path / "r.xml").read_text() == render_junit(golden_report())
    # No sink wrote to stdout, so the JSON report went there: nothing measured is lost.
    assert json.loads(capsys.readouterr().out)["slo"]["passed"] is False
    assert failures[2] == "the JSON report went to stdout instead, so nothing measured is lost"


def test_a_third_party_sink_receives_the_full_report(tmp_path) -> None:
    received: list[tuple[Report, str | None]] = []

    class Recorder(Sink):
        name = "recorder"

        def write(self, report: Report, destination: str | None) -> None:
            received.append((report, destination))

    class Plugin:
        @hookimpl
        def kperf_register_sinks(self, registry):
            registry.add(Recorder)

    pm = KperfPluginManager(autoload=False, plugins=[("recorder-plugin", Plugin())])
    targets = parse_targets(["recorder:somewhere"], pm.sinks)
    report = golden_report()
    assert deliver(report, targets, pm.sinks) == []
    [(got, destination)] = received
    assert destination == "somewhere"
    assert got is report and got.slo is not None and got.kperf.server_version == "v1.34.0"


def test_a_sink_error_is_the_sinks_message(pm, tmp_path) -> None:
    class Refusing(Sink):
        name = "refusing"

        def write(self, report: Report, destination: str | None) -> None:
            raise SinkError("the bucket is full")

    class Plugin:
        @hookimpl
        def kperf_register_sinks(self, registry):
            registry.add(Refusing)

    pm = KperfPluginManager(autoload=False, plugins=[("p", Plugin())])
    targets = [SinkTarget("refusing", "b"), SinkTarget("json", str(tmp_path / "r.json"))]
    assert deliver(golden_report(), targets, pm.sinks) == ["sink refusing:b: the bucket is full"]
    assert (tmp_path / "r.json").read_text() == render_json(golden_report())


def test_html_is_self_contained_and_shows_verdicts_keys_and_plots() -> None:
    report = golden_report()
    page = render_html(report)
    assert not re.search(r"""(src|href)=|@import|url\(|<script""", page)
    assert '<td class="fail">BREACH</td>' in page and '<td class="pass">pass</td>' in page
    assert "<code>PATCH /api/v1/namespaces/ns/configmaps/:name?timeout=1m0s</code>" in page
    assert re.findall(r'aria-label="([^"]+)"', page) == [
        "latency percentiles per key",
        "latency distribution per key",
        "throughput per spec",
        "throughput over time, spec 0",
        "latency over time, spec 0",
        "errors over time, spec 0",
    ]
    # one distribution per key; over time: successes/s, p50, p99 (no base given)
    assert page.count("<polyline") == 2 + 3
    # each window's figures in its point's tooltip, an error bar per window with failures
    assert "0 s: 3 ok, 1 failed (3.0 req/s)" in page and "1 s: 3 ok, 1 failed" in page
    assert page.count('<rect class="window"') == 2
    with_base = render_html(report, report, "base.json")
    assert "No regression beyond the 10% budget." in with_base
    assert with_base.count("<polyline") == 2 * 5  # and the base's, dashed


def test_a_last_window_of_a_few_milliseconds_is_drawn_with_the_one_before() -> None:
    key = "LIST /api/v1/pods"
    report = make_report({key: [0.01] * 21}, seconds=2.004)
    # 10 per second, and one request that completed while the spec drained (4 ms into window 2)
    report = with_time_series(report, {key: [[0.01] * 10, [0.01] * 10, [0.01]]}, {})
    points = re.findall(r"<title>(\d+) s: (\d+) ok", render_html(report))
    # alone, 1 request over 4 ms would plot as 250 req/s
    assert points == [("0", "10"), ("1", "11")]


def test_only_a_sink_that_can_show_a_comparison_writes_against_a_base(tmp_path) -> None:
    from kperf_core.sinks import Baseline

    report = make_report({"LIST /api/v1/pods": [0.01] * 50})
    base = Baseline(make_report({"LIST /api/v1/pods": [0.005] * 50}), "base.json", 0.1)
    sinks = KperfPluginManager().sinks
    page = tmp_path / "page.html"
    sinks["html"]().write_against(report, base, str(page))
    assert "Against <code>base.json</code>" in page.read_text()
    with pytest.raises(SinkError, match="the csv sink cannot show a report against a base run"):
        sinks["csv"]().write_against(report, base, str(tmp_path / "r.csv"))
