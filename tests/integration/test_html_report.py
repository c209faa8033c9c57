"""The HTML report opened in real headless Chromium: what the page shows, offline."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
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


def test_the_page_shows_the_run_the_slos_and_the_comparison_offline(tmp_path) -> None:
    run = tmp_path / "run.json"
    run.write_text(render_json(shifted(load_report(REAL_REPORT), 60)))  # 1.8 times slower
    page = tmp_path / "run.html"
    proc = subprocess.run(
        [*KPERF, "report", "html", str(run), str(REAL_REPORT), "-o", str(page)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(page)
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

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "html-report.png"
    shot = chromium(
        tmp_path, f"--screenshot={screenshot}", "--window-size=1000,2200", page.as_uri()
    )
    assert shot.returncode == 0, shot.stderr
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
