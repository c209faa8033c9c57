"""Run comparison: the statistics, the verdicts, and `kperf report compare` on report files."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from report_factory import make_report, shifted

from kperf_core.comparison import (
    ALPHA,
    OVERALL,
    compare,
    mann_whitney_p,
    proportion_increase_p,
    tail_p,
)
from kperf_core.metrics import LatencyHistogram
from kperf_core.report_model import load_report, render_json

REPORTS = Path(__file__).parents[1] / "data" / "reports"
KPERF = [sys.executable, "-c", "from kperf_core.cli import kperf_main; kperf_main()"]


def spread(center: float, n: int = 400, width: float = 0.5) -> list[float]:
    """n latencies evenly spread over center * [1 - width/2, 1 + width/2]."""
    return [center * (1 - width / 2 + width * i / (n - 1)) for i in range(n)]


def test_mann_whitney_matches_the_textbook_on_distinct_values() -> None:
    # U for base {1,2,3} vs new {4,5}: every new value is larger, U_new = 6 = n1*n2.
    base, new = LatencyHistogram.of([1.0, 2.0, 3.0]), LatencyHistogram.of([4.0, 5.0])
    z = (6 - 3) / math.sqrt(3 * 2 * (3 + 2 + 1) / 12)
    assert mann_whitney_p(base, new) == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)))
    assert mann_whitney_p(new, base) == pytest.approx(1 - mann_whitney_p(base, new))


def test_identical_samples_are_not_different() -> None:
    h = LatencyHistogram.of(spread(0.01, 1000, 1.5))
    assert mann_whitney_p(h, h) == pytest.approx(0.5)
    assert tail_p(h, h) == pytest.approx(0.5)


def test_a_ten_percent_shift_is_significant_a_sample_apart_is_not() -> None:
    base = LatencyHistogram.of(spread(0.01, 1000))
    assert mann_whitney_p(base, LatencyHistogram.of(spread(0.011, 1000))) < 1e-6
    assert mann_whitney_p(base, LatencyHistogram.of(spread(0.01, 999))) > 0.4


def test_tail_test_sees_a_tail_the_median_does_not() -> None:
    body = spread(0.01, 990, 0.2)
    base = LatencyHistogram.of(body + spread(0.02, 10, 0.1))
    new = LatencyHistogram.of(body[20:] + spread(0.05, 30, 0.1))
    assert tail_p(base, new) < ALPHA
    assert mann_whitney_p(base, new) > ALPHA


def test_proportion_test() -> None:
    assert proportion_increase_p(0, 1000, 50, 1000) < 1e-9
    assert proportion_increase_p(10, 1000, 11, 1000) > 0.3
    assert proportion_increase_p(0, 10, 0, 10) == 1.0


def test_a_rerun_of_the_same_thing_is_quiet() -> None:
    base = make_report(
        {"LIST /api/v1/pods": spread(0.01), "GET /api/v1/namespaces/a": spread(0.002)}
    )
    assert compare(base, base, 0.10).regressions == ()


def test_a_slower_key_regresses_and_the_overall_row_too() -> None:
    base = make_report(
        {"LIST /api/v1/pods": spread(0.01), "GET /api/v1/namespaces/a": spread(0.002)}
    )
    new = make_report(
        {"LIST /api/v1/pods": spread(0.013), "GET /api/v1/namespaces/a": spread(0.002)}
    )
    result = compare(base, new, 0.10)
    assert [k.key for k in result.regressions] == [OVERALL, "LIST /api/v1/pods"]
    pods = result.regressions[1]
    assert pods.p50.relative == pytest.approx(0.3, abs=0.01)
    assert pods.p50.p_value is not None and pods.p50.p_value < ALPHA
    assert pods.reasons()[0] == f"p50 {pods.p50.relative:+.1%}, p={pods.p50.p_value:.2g}"
    # Within the budget: the same 30 % slowdown is allowed with a 50 % budget.
    assert compare(base, new, 0.50).regressions == ()


def test_throughput_and_errors_regress() -> None:
    base = make_report({"LIST /api/v1/pods": spread(0.01)}, seconds=10)
    slower = make_report({"LIST /api/v1/pods": spread(0.01)}, seconds=13)
    [row] = [k for k in compare(base, slower, 0.1).regressions if k.key != OVERALL]
    assert row.reasons() == ["throughput -23.1%"]
    failing = make_report({"LIST /api/v1/pods": spread(0.01)}, failed={"LIST /api/v1/pods": 40})
    [row] = [k for k in compare(base, failing, 0.1).regressions if k.key != OVERALL]
    assert row.error_rate.regressed and row.reasons()[0].startswith("error rate new, p=")


def test_keys_in_one_run_only_are_listed_not_regressions() -> None:
    base = make_report({"LIST /api/v1/pods": spread(0.01)})
    new = make_report({"LIST /api/v1/pods": spread(0.01), "LIST /api/v1/nodes": spread(0.5)})
    result = compare(base, new, 0.1)
    assert [(k.key, k.present_in) for k in result.keys if k.present_in != "both"] == [
        ("LIST /api/v1/nodes", "new")
    ]
    assert [k.key for k in result.regressions] == [OVERALL]  # the mix got slower overall


def _with_server(report, buckets, codes):
    """``report`` with a server view of its LIST pods: the server's buckets and codes, and a call
    of another client (not the load's: never compared)."""
    import attrs

    from kperf_core.report_model import ServerCall, ServerHistogram, ServerView

    def call(verb, resource, scope, buckets, codes):
        count = sum(codes.values())
        latency = ServerHistogram(count, 0.0, tuple(buckets))
        return ServerCall(verb, resource, scope, count, codes, latency)

    view = ServerView(
        source="GET /metrics",
        calls=(
            call("LIST", "pods", "cluster", buckets, codes),
            call("PUT", "leases", "namespace", ((0.005, 10),), {"200": 10}),
        ),
    )
    return attrs.evolve(report, server=view)


def test_the_servers_figures_are_compared_too() -> None:
    client = make_report({"LIST /api/v1/pods": spread(0.01)})
    base = _with_server(client, ((0.01, 300), (0.025, 100)), {"200": 400})
    # a re-run: quiet, and only the load's own call is compared
    result = compare(base, base, 0.1)
    assert [k.key for k in result.server] == ["server: LIST pods (cluster)"]
    assert result.regressions == ()
    # the server got slower (the client did not see it: its report is the same) and answered 429s
    slower = _with_server(client, ((0.01, 100), (0.025, 200), (0.05, 100)), {"200": 360, "429": 40})
    [row] = compare(base, slower, 0.1).regressions
    assert row.key == "server: LIST pods (cluster)"
    assert (row.p50.base, row.p50.new) == (0.01, 0.025)  # bucket bounds
    assert row.p99.new == 0.05 and row.p99.regressed
    assert row.error_rate.regressed and row.error_rate.new == pytest.approx(0.1)
    # no server view on one side: nothing of the server's to compare
    assert compare(client, slower, 0.1).server == ()


# -- `kperf report compare` on real report files ------------------------------------------------


def run_compare(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KPERF, "report", "compare", *args], capture_output=True, text=True)


BASE = REPORTS / "two-specs-slo.json"


def test_compare_cli_is_quiet_on_the_same_run() -> None:
    proc = run_compare(str(BASE), str(BASE))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].startswith(OVERALL)
    assert "REGRESSED" not in proc.stdout


def test_compare_cli_finds_an_injected_regression(tmp_path) -> None:
    new = tmp_path / "new.json"
    new.write_text(render_json(shifted(load_report(BASE), 40)))  # 1.49 times slower
    proc = run_compare(str(BASE), str(new), "--budget", "10%", "-o", "json")
    assert proc.returncode == 6, proc.stderr
    document = json.loads(proc.stdout)
    assert document["regressed"] is True
    rows = {row["key"]: row for row in document["keys"]}
    pods = rows["LIST /api/v1/namespaces?resourceVersion=0&timeout=1m0s"]
    assert pods["p50"]["regressed"] and pods["p50"]["relative"] == pytest.approx(0.49, abs=0.02)
    [error] = proc.stderr.splitlines()
    assert error.startswith(f"kperf: error: {new} regressed beyond the 10% budget against {BASE}")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--budget", "ten"],
            "kperf: error: --budget ten: must be a percentage like 10% (0% to 999%)",
        ),
        ([], "kperf: error: {other}: kperf.reportFormat is 9; this kperf reads report format 1"),
    ],
)
def test_compare_cli_bad_input_is_one_line(tmp_path, args, message) -> None:
    other = tmp_path / "other.json"
    document = json.loads(BASE.read_text())
    document["kperf"]["reportFormat"] = 9
    other.write_text(json.dumps(document))
    proc = run_compare(str(BASE), str(other), *args)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [message.format(other=other)]
