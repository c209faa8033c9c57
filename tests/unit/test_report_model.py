"""The typed report reads and writes exactly the document `kperf runner run` writes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from kperf_core.report_model import (
    ReportError,
    load_report,
    render_json,
    report_from_document,
    report_to_document,
)

REPORTS = Path(__file__).parents[1] / "data" / "reports"
REAL_REPORTS = sorted(REPORTS.glob("*.json"))


def test_there_are_real_reports_to_check() -> None:
    # Written by `kperf runner run` against the local control plane: two specs with SLO verdicts;
    # 404s, --raw-data (latenciesByURL, errors) and a watch's requestTypeFacts.
    assert {p.name for p in REAL_REPORTS} >= {"two-specs-slo.json", "errors-raw-watch.json"}


@pytest.mark.parametrize("path", REAL_REPORTS, ids=lambda p: p.name)
def test_real_reports_round_trip_byte_for_byte(path: Path) -> None:
    assert render_json(load_report(path)) == path.read_text()


def _document() -> dict:
    """A real report (404s, --raw-data, a watch's facts), as a fresh dict to change."""
    return json.loads((REPORTS / "errors-raw-watch.json").read_text())


def test_document_round_trips_and_renders_as_the_runner_always_wrote_it() -> None:
    # The runner wrote `json.dumps(document, indent=2) + "\n"` before the model existed.
    document = _document()
    report = report_from_document(document, "x")
    assert report_to_document(report) == document
    assert render_json(report) == json.dumps(document, indent=2) + "\n"
    assert report.per_spec_results[0].errors is not None
    assert report.per_spec_results[0].request_type_facts is not None
    assert report.per_spec_results[0].error_stats == {"http/404": 97}


def test_histograms_are_reachable_and_agree_with_the_percentiles() -> None:
    report = load_report(REPORTS / "two-specs-slo.json")
    document = json.loads((REPORTS / "two-specs-slo.json").read_text())
    for key, pairs in document["aggregated"]["percentileLatenciesByURL"].items():
        histogram = report.aggregated.latency_histograms_by_url[key]
        assert [[p, histogram.quantile(p)] for p, _ in pairs] == pairs
    overall = report.aggregated.overall_histogram()
    assert overall.count == document["aggregated"]["requests"]["succeeded"]
    assert overall.percentiles() == document["aggregated"]["percentileLatencies"]


def test_keys_of_a_newer_version_are_kept_and_written_back() -> None:
    document = _document()
    document["serverView"] = {"apiserver_request_total": 12}
    document["aggregated"]["timeSeries"] = [[0, 1]]
    document["perSpecResults"][0]["load"]["warmupSeconds"] = 2.5
    report = report_from_document(copy.deepcopy(document), "newer.json")
    assert report.extra == {"serverView": {"apiserver_request_total": 12}}
    assert report.per_spec_results[0].load.extra == {"warmupSeconds": 2.5}
    assert (
        report.per_spec_results[0].load.achieved_rate
        == document["perSpecResults"][0]["load"]["achievedRate"]
    )
    assert report_to_document(report) == document


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["kperf"].update(reportFormat=2),
            "r.json: kperf.reportFormat is 2; this kperf",
        ),
        (lambda d: d.pop("kperf"), "r.json: no kperf.reportFormat (a report of upstream kperf"),
        (
            lambda d: d["perSpecResults"][0]["requests"].update(sent="4"),
            "r.json: perSpecResults[0].requests.sent: must be an integer (got '4')",
        ),
        (
            lambda d: d["aggregated"].pop("durationSeconds"),
            "r.json: aggregated.durationSeconds: required",
        ),
        (
            lambda d: next(iter(d["aggregated"]["latencyHistogramsByURL"].values())).update(
                relativeAccuracy=0.01
            ),
            'r.json: aggregated.latencyHistogramsByURL["LIST https://127.0.0.1:38555/api/v1/'
            'namespaces/default/configmaps?resourceVersion=0&timeout=1m0s"]: not a histogram: '
            "histogram with relative accuracy 0.01 cannot merge with 0.005",
        ),
        (lambda d: d.update(perSpecResults=5), "r.json: perSpecResults: must be a list"),
        (
            lambda d: d["aggregated"].update(requestsByURL=[]),
            "r.json: aggregated.requestsByURL: must be an object",
        ),
    ],
)
def test_a_malformed_report_is_one_error_naming_file_and_path(change, message) -> None:
    document = _document()
    change(document)
    with pytest.raises(ReportError) as caught:
        report_from_document(document, "r.json")
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_unreadable_and_non_json_files_name_the_file(tmp_path) -> None:
    with pytest.raises(ReportError, match=r"missing.json: cannot read: No such file"):
        load_report(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "perSpecResults": [\n')
    with pytest.raises(ReportError, match=r"broken.json:3:1: not JSON: Expecting value"):
        load_report(broken)
