"""The server's view: parsing the API server's /metrics and the deltas of two scrapes.

The samples in tests/data/apiserver-metrics are real scrapes of kube-apiserver v1.20.2 and v1.35.4
(trimmed to the families the view reads and to configmaps/namespaces), taken before and after
exactly: 7 LIST of the configmaps of `default` and 3 GET of namespace `default` by an admin
(APF level `exempt`), and 2 LIST of those configmaps by a user without any RBAC (level
`global-default`, queued then refused).
"""

from __future__ import annotations

import math
from pathlib import Path

import attrs
import pytest
from kperf_plugins.checks.slo import BUILTIN_THRESHOLDS, Threshold, server_verdicts
from kperf_plugins.server_metrics import FAMILIES, server_view
from kperf_plugins.server_metrics.exposition import (
    CounterReset,
    ExpositionError,
    Scrape,
    counter_delta,
    histogram_delta,
)
from kperf_plugins.sinks.csv import render_csv
from kperf_plugins.sinks.html import render_html
from kperf_plugins.sinks.junit import render_junit
from kperf_plugins.sinks.prometheus import render_metrics
from report_factory import make_report

from kperf_core.api_calls import server_call
from kperf_core.report_model import (
    ServerCall,
    ServerHistogram,
    ServerView,
    render_json,
    report_from_document,
    report_to_document,
    section_to_document,
)

DATA = Path(__file__).parent.parent / "data" / "apiserver-metrics"
VERSIONS = ("v1.20.2", "v1.35.4")


def scrapes(version: str) -> tuple[Scrape, Scrape]:
    return tuple(  # type: ignore[return-value]
        Scrape.parse((DATA / f"{version}-{when}.txt").read_text(), FAMILIES)
        for when in ("before", "after")
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_the_calls_made_between_two_real_scrapes_are_counted_exactly(version: str) -> None:
    view = server_view(*scrapes(version))
    calls = {c.key: c for c in view.calls}
    assert set(calls) == {("LIST", "configmaps", "namespace"), ("GET", "namespaces", "resource")}
    lists, gets = calls["LIST", "configmaps", "namespace"], calls["GET", "namespaces", "resource"]
    assert (lists.count, lists.codes) == (7, {"200": 7})
    assert (gets.count, gets.codes) == (3, {"200": 3})
    # The duration histogram saw the same calls, each in one bucket.
    assert lists.latency is not None and lists.latency.count == 7
    assert sum(n for _, n in lists.latency.buckets) == 7
    assert 0 < lists.latency.sum_seconds < 7 * lists.latency.quantile(1.0)  # type: ignore[operator]


def test_each_generation_names_its_metrics() -> None:
    old, new = server_view(*scrapes("v1.20.2")), server_view(*scrapes("v1.35.4"))
    assert old.metrics["storedObjects"] == "etcd_object_counts"
    assert new.metrics["storedObjects"] == "apiserver_resource_objects"
    # v1.20 has no SLI histogram: its calls carry the request duration only.
    assert "sliLatency" not in old.metrics
    assert all(c.sli_latency is None for c in old.calls)
    assert new.metrics["sliLatency"] == "apiserver_request_sli_duration_seconds"
    assert all(c.sli_latency is not None and c.sli_latency.count == c.count for c in new.calls)
    # etcd: the Go type up to v1.2x, group/resource now.
    assert {(e.operation, e.object, e.latency.count) for e in old.etcd_requests} == {
        ("get", "*core.Namespace", 3),
        ("list", "*[]core.ConfigMap", 7),
    }
    assert {(e.operation, e.object, e.latency.count) for e in new.etcd_requests} == {
        ("get", "namespaces", 3),
        ("list", "configmaps", 7),
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_flow_control_per_priority_level_and_flow_schema(version: str) -> None:
    levels = {
        (f.priority_level, f.flow_schema): f for f in server_view(*scrapes(version)).flow_control
    }
    # 7 + 3 admin calls and the first scrape itself, which finished after it was taken.
    assert levels["exempt", "exempt"].dispatched == 11
    assert levels["exempt", "exempt"].queue_wait is None  # exempt requests never queue
    refused = levels["global-default", "global-default"]
    assert refused.dispatched == 2 and refused.rejected == {}
    assert refused.queue_wait is not None and refused.queue_wait.count == 2


def test_a_counter_that_went_down_means_a_restart_and_no_view() -> None:
    before, after = scrapes("v1.35.4")
    view = server_view(after, before)
    assert view.unavailable is not None and "restarted during the run" in view.unavailable
    assert view.calls == ()


SAMPLE = """\
# HELP demo_total A counter.
# TYPE demo_total counter
demo_total{path="/a\\"b",note="line\\nbreak"} 3 1700000000000
demo_total 5
demo_seconds_bucket{op="x",le="0.1"} 1
demo_seconds_bucket{op="x",le="1"} 4
demo_seconds_bucket{op="x",le="+Inf"} 6
demo_seconds_sum{op="x"} 9.5
demo_seconds_count{op="x"} 6
other_metric{a="b"} not-even-read
"""


def test_labels_escapes_timestamps_and_infinity() -> None:
    scrape = Scrape.parse(SAMPLE, ["demo_total", "demo_seconds"])
    assert scrape.samples["demo_total"] == {
        (("note", "line\nbreak"), ("path", '/a"b')): 3.0,
        (): 5.0,
    }
    bounds = {dict(labels)["le"]: v for labels, v in scrape.samples["demo_seconds_bucket"].items()}
    assert bounds == {"0.1": 1.0, "1": 4.0, "+Inf": 6.0}
    assert "other_metric" not in scrape.samples  # families not asked for are skipped unread


def test_histogram_delta_is_per_bucket_not_cumulative() -> None:
    before = Scrape.parse(SAMPLE, ["demo_seconds"])
    after = Scrape.parse(
        SAMPLE.replace('le="0.1"} 1', 'le="0.1"} 2')
        .replace('le="1"} 4', 'le="1"} 8')
        .replace('le="+Inf"} 6', 'le="+Inf"} 11')
        .replace('_sum{op="x"} 9.5', '_sum{op="x"} 20')
        .replace('_count{op="x"} 6', '_count{op="x"} 11'),
        ["demo_seconds"],
    )
    [(labels, (buckets, count, total))] = histogram_delta(before, after, "demo_seconds").items()
    assert labels == (("op", "x"),)
    assert buckets == {0.1: 1, 1.0: 3, math.inf: 1}
    assert (count, total) == (5, 10.5)


def test_a_series_born_during_the_run_counts_from_zero_and_a_drop_is_a_reset() -> None:
    empty = Scrape({})
    after = Scrape.parse(SAMPLE, ["demo_total"])
    assert counter_delta(empty, after, "demo_total")[()] == 5
    with pytest.raises(CounterReset, match="went down from 5 to 0"):
        counter_delta(after, Scrape.parse("demo_total 0\n", ["demo_total"]), "demo_total")


@pytest.mark.parametrize(
    "text", ['demo_total{a="b" 1\n', "demo_total\n", "demo_total{a=b} 1\n", "demo_total x\n"]
)
def test_a_malformed_line_is_one_error(text: str) -> None:
    with pytest.raises(ExpositionError):
        Scrape.parse(text, ["demo_total"])


def test_a_server_percentile_is_its_buckets_upper_bound() -> None:
    histogram = ServerHistogram(
        count=100, sum_seconds=9.0, buckets=((0.05, 90), (0.2, 9), (None, 1))
    )
    assert histogram.quantile(0.5) == 0.05
    assert histogram.quantile(0.9) == 0.05
    assert histogram.quantile(0.99) == 0.2
    assert histogram.quantile(1.0) is None  # above the largest bound: unknown
    assert histogram.percentiles() == ((0.5, 0.05), (0.9, 0.05), (0.95, 0.2), (0.99, 0.2))


@pytest.mark.parametrize(
    ("labels", "key"),
    [
        (("CREATE", "", "configmaps", "", "resource"), ("POST", "configmaps", "resource")),
        (("UPDATE", "apps", "deployments", "scale", "resource"),
         ("PUT", "apps/deployments/scale", "resource")),
        (("DELETECOLLECTION", "", "pods", "", "namespace"), ("DELETE", "pods", "namespace")),
        (("GET", "", "pods", "log", "resource"), ("POD_LOG", "pods/log", "resource")),
        (("CONNECT", "", "pods", "log", "resource"), ("POD_LOG", "pods/log", "resource")),
        (("LIST", "", "pods", "", "cluster"), ("LIST", "pods", "cluster")),
    ],
)  # fmt: skip
def test_server_labels_name_calls_as_client_keys_do(labels, key) -> None:
    assert server_call(*labels).key == key


def test_pod_logs_and_watches_are_streaming_on_the_server_too() -> None:
    assert server_call("CONNECT", "", "pods", "log", "resource").streaming
    assert server_call("WATCH", "", "pods", "", "namespace").streaming
    assert not server_call("LIST", "", "pods", "", "namespace").streaming


def with_server(calls: tuple[ServerCall, ...], metrics: dict[str, str] | None = None):
    report = make_report({"LIST /api/v1/namespaces/ns/configmaps": [0.01] * 10})
    view = ServerView(
        source="GET /metrics",
        metrics=metrics or {"latency": "apiserver_request_duration_seconds"},
        calls=calls,
    )
    return attrs.evolve(report, server=view)


def lists(latency: ServerHistogram, sli: ServerHistogram | None = None) -> ServerCall:
    return ServerCall("LIST", "configmaps", "namespace", 10, {"200": 10}, latency, sli)


def test_server_verdicts_judge_the_clients_classes_on_the_servers_buckets() -> None:
    slow = ServerHistogram(count=10, sum_seconds=60.0, buckets=((4.0, 5), (6.0, 5)))
    report = with_server((lists(slow),))
    verdicts = server_verdicts(report, BUILTIN_THRESHOLDS, "builtin")
    assert verdicts is not None and not verdicts.passed
    [check] = verdicts.checks
    assert (check.verb, check.resource, check.scope) == ("LIST", "configmaps", "namespace")
    assert (check.value_seconds, check.threshold_seconds, check.count) == (6.0, 5.0, 10)
    assert check.keys == (
        'apiserver_request_duration_seconds{verb="LIST",resource="configmaps",scope="namespace"}',
    )


def test_the_sli_histogram_is_preferred_when_the_server_has_one() -> None:
    # APF queueing made the request slow, the SLI (which excludes it) is fast: SIG-scalability's
    # verdict is the SLI's.
    slow = ServerHistogram(count=10, sum_seconds=60.0, buckets=((6.0, 10),))
    fast = ServerHistogram(count=10, sum_seconds=0.1, buckets=((0.05, 10),))
    report = with_server(
        (lists(slow, fast),),
        {"latency": "apiserver_request_duration_seconds",
         "sliLatency": "apiserver_request_sli_duration_seconds"},
    )  # fmt: skip
    verdicts = server_verdicts(report, BUILTIN_THRESHOLDS, "builtin")
    assert verdicts is not None and verdicts.passed
    assert verdicts.checks[0].keys[0].startswith("apiserver_request_sli_duration_seconds{")


def test_a_class_the_server_did_not_count_fails_and_no_view_means_no_verdicts() -> None:
    report = with_server(())
    verdicts = server_verdicts(report, (Threshold(seconds=1.0),), "x.yaml")
    assert verdicts is not None and not verdicts.passed
    assert verdicts.checks[0].value_seconds is None and verdicts.checks[0].count == 0
    unavailable = attrs.evolve(report, server=ServerView(source="GET /metrics", unavailable="403"))
    assert server_verdicts(unavailable, BUILTIN_THRESHOLDS, "builtin") is None


def real_report():
    """A client report beside the real v1.35 view (the same 7 LISTs and 3 GETs)."""
    report = make_report(
        {
            "LIST /api/v1/namespaces/default/configmaps": [0.004] * 7,
            "GET /api/v1/namespaces/default": [0.002] * 3,
        }
    )
    return attrs.evolve(report, server=server_view(*scrapes("v1.35.4")))


def test_the_server_section_round_trips_through_the_model() -> None:
    report = real_report()
    document = report_to_document(report)
    assert document["server"] == section_to_document(report.server)
    assert document["server"]["calls"][1]["latency"]["buckets"] == [[0.005, 6], [0.025, 1]]
    again = report_from_document(document, "r.json")
    assert again.server == report.server
    assert render_json(again) == render_json(report)


def test_csv_junit_html_and_prometheus_show_the_server_beside_the_client() -> None:
    from kperf_plugins.checks.slo import SloCheckPlugin

    report = SloCheckPlugin(None).evaluate(real_report())
    rows = [r.split(",") for r in render_csv(report).splitlines() if r.startswith("server,")]
    assert [(r[1], r[3], r[4], r[5], r[6]) for r in rows] == [
        ("GET", "namespaces", "resource", "3", "0"),
        ("LIST", "configmaps", "namespace", "7", "0"),
    ]
    junit = render_junit(report)
    assert 'name="kperf SLO (server\'s data)" tests="2" failures="0"' in junit
    assert 'classname="slo.server.namespace.LIST"' in junit
    page = render_html(report)
    assert 'aria-label="client vs server latency per call"' in page
    assert "<td>LIST configmaps (namespace)</td>" in page
    assert "Server (its histograms&#x27; bucket bounds): every class met its threshold." in page
    metrics = render_metrics(report).splitlines()
    lists = 'verb="LIST",resource="configmaps",scope="namespace"'
    assert f'kperf_server_requests_total{{{lists},code="200"}} 7' in metrics
    # The server's own buckets, cumulative as Prometheus keeps them: 6 within 5 ms, 1 within 25.
    assert [m.rsplit(" ", 1)[1] for m in metrics if m.startswith(
        f"kperf_server_request_duration_seconds_bucket{{{lists}")] == ["6", "7", "7"]  # fmt: skip
    assert (
        'kperf_slo_passed{resource="configmaps",verb="LIST",scope="namespace",data="server"} 1'
        in metrics
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_a_snapshot_keeps_what_the_view_needs_and_gives_the_same_view(version: str) -> None:
    import gzip

    from kperf_plugins.server_metrics import MetricsObserver

    before, after = scrapes(version)
    # A runner-group server keeps snapshots: the families' lines, compressed.
    kept = [gzip.compress(scrape.text.encode()) for scrape in (before, after)]
    observer = MetricsObserver(endpoint=None)  # type: ignore[arg-type]  (view reads no server)
    assert observer.view(*kept) == server_view(before, after)
    assert all(line.startswith(FAMILIES) for line in before.text.splitlines())


def test_an_unreadable_snapshot_is_an_unavailable_view() -> None:
    from kperf_plugins.server_metrics import MetricsObserver

    view = MetricsObserver(endpoint=None).view(b"not gzip", b"")  # type: ignore[arg-type]
    assert view.calls == ()
    assert view.unavailable is not None and view.unavailable.startswith("a snapshot is unreadable")
