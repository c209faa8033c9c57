"""The HTML report opened in real headless Chromium: what the page shows, offline."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import spec
from report_factory import shifted

from kperf_core.report_model import load_report, render_json

KPERF = [sys.executable, "-c", "from kperf_core.cli import kperf_main; kperf_main()"]
REAL_REPORT = Path(__file__).parents[1] / "data" / "reports" / "two-specs-slo.json"
#: Screenshots kept after the run for people to look at (build/ is git-ignored).
ARTIFACTS = Path(__file__).parents[2] / "build" / "test-artifacts"


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed: run scripts/setup.sh")
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",  # tests run as root in the CI container
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            # No network at all: a page that needed any would show it.
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def keep_screenshot(page: Path, name: str, height: int, tmp_path: Path) -> None:
    """A screenshot of the page in build/test-artifacts, for people to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / name
    shot = chromium(
        tmp_path, f"--screenshot={screenshot}", f"--window-size=1000,{height}", page.as_uri()
    )
    assert shot.returncode == 0, shot.stderr
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def render_page(run: Path, base: Path, tmp_path: Path) -> Path:
    """``kperf report html RUN BASE`` as a user runs it; the page it wrote."""
    page = tmp_path / "run.html"
    proc = subprocess.run(
        [*KPERF, "report", "html", str(run), str(base), "-o", str(page)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(page)
    return page


def test_the_page_shows_the_run_the_slos_and_the_comparison_offline(tmp_path) -> None:
    run = tmp_path / "run.json"
    run.write_text(render_json(shifted(load_report(REAL_REPORT), 60)))  # 1.8 times slower
    page = render_page(run, REAL_REPORT, tmp_path)
    source = page.read_text()
    # Self-contained: nothing to fetch.
    assert not re.search(r"""(src|href)=|@import|url\(""", source)

    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr
    text = re.sub(r"<[^>]+>", " ", dom.stdout)
    assert "kperf run report" in text
    assert "REGRESSED" in text and "regressions beyond the 10% budget" in text
    for name in (
        "LIST configmaps (namespace scope)",
        "GET namespaces (resource scope)",
        "LIST namespaces (cluster scope)",
        "LIST pods (cluster scope)",
    ):
        assert name in text
    labels = re.findall(r'<svg role="img" aria-label="([^"]+)"', dom.stdout)
    assert labels == [
        "latency percentiles per key",
        "latency distribution per key (dashed: base)",
        "throughput per spec",
    ]
    assert dom.stdout.count("<polyline") == 2 * 4  # 4 keys, base dashed beside each

    keep_screenshot(page, "html-report.png", 2200, tmp_path)


def _reads_and_misses(namespace: str) -> list[dict]:
    return [
        {"staleList": {"version": "v1", "resource": "namespaces"}, "shares": 3},
        # a ConfigMap that does not exist: every GET fails with a 404, seen as errors over time
        {
            "quorumGet": {
                "version": "v1",
                "resource": "configmaps",
                "namespace": namespace,
                "name": "missing",
            },
            "shares": 1,
        },
    ]


def _assert_series_add_up(report: dict) -> dict:
    """Every spec's windows add up to its keys' totals; returns spec 0's series."""
    for one in report["perSpecResults"]:
        series = one["timeSeries"]
        assert series["windowSeconds"] == 1.0
        # one window per second the spec ran, the last one partial
        assert series["windows"] == int(one["durationSeconds"]) + 1
        assert set(series["byURL"]) == set(one["requestsByURL"])
        for key, counts in one["requestsByURL"].items():
            columns = series["byURL"][key]
            assert sum(columns["succeeded"]) == counts["succeeded"]
            assert sum(columns["failed"]) == counts["failed"]
            assert (
                sum(n for window in columns["latencyBuckets"] for n in window.values())
                == (counts["succeeded"])
            )
    return report["perSpecResults"][0]["timeSeries"]


@pytest.mark.integration
def test_plots_over_time_of_a_real_run_against_its_base(run_kperf, namespace, tmp_path) -> None:
    profile = spec(_reads_and_misses(namespace), rate=60, duration=4)
    proc, base = run_kperf(profile)
    assert proc.returncode == 0, proc.stderr
    base_path = tmp_path / "base.json"
    base_path.write_text(json.dumps(base))
    # the run to plot: two engine processes, whose windows merge
    proc, report = run_kperf(profile, "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert report["perSpecResults"][0]["load"]["workers"] == 2
    _assert_series_add_up(base)
    series = _assert_series_add_up(report)
    spec0 = report["perSpecResults"][0]
    assert spec0["requests"]["failed"] > 0  # the 404s

    run_path = tmp_path / "run.json"
    run_path.write_text(json.dumps(report))
    page = render_page(run_path, base_path, tmp_path)
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr
    charts = dict(
        re.findall(r'<svg role="img" aria-label="([^"]+)"[^>]*>(.*?)</svg>', dom.stdout, re.S)
    )
    throughput = charts["throughput over time, spec 0"]
    latency = charts["latency over time, spec 0"]
    errors = charts["errors over time, spec 0"]
    # a point per window, its tooltip the window's counts: together the spec's totals (a last
    # window the spec covered for less than a tenth of a second is drawn with the one before)
    windows = re.findall(r"<title>([\d.]+) s: (\d+) ok, (\d+) failed", throughput)
    last_covered = spec0["durationSeconds"] - (series["windows"] - 1) * series["windowSeconds"]
    assert len(windows) == series["windows"] - (last_covered < series["windowSeconds"] / 10)
    assert sum(int(ok) for _, ok, _ in windows) == spec0["requests"]["succeeded"]
    assert sum(int(failed) for _, _, failed in windows) == spec0["requests"]["failed"]
    assert re.findall(r"<title>[\d.]+ s: (\d+) failed</title>", errors)
    assert (
        sum(int(n) for n in re.findall(r"<title>[\d.]+ s: (\d+) failed</title>", errors))
        == spec0["requests"]["failed"]
    )
    # p50 and p99 per window with a success, each within the run's own range
    p99s = [float(v) for v in re.findall(r"<title>[\d.]+ s: p99 ([\d.]+) ms</title>", latency)]
    assert p99s and all(v <= spec0["percentileLatencies"][-1][1] * 1000 * 1.06 for v in p99s)
    # the base beside them, dashed
    assert "base successes/s" in throughput and 'stroke-dasharray="5,4"' in latency

    keep_screenshot(page, "html-report-over-time.png", 4000, tmp_path)
