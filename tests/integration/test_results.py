"""Results against the real control plane: sinks, SLO verdicts, a real Pushgateway, compare."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import KPERF
from ruamel.yaml import YAML

from kperf_core.report_model import load_report, render_json

pytestmark = pytest.mark.integration

PUSHGATEWAY = "prometheus-pushgateway"


def kperf(cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KPERF, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
    )


def write_profile(tmp_path: Path, requests: list[dict], **spec) -> Path:
    path = tmp_path / f"profile-{uuid.uuid4().hex[:6]}.yaml"
    with path.open("w") as f:
        YAML().dump({"version": 1, "specs": [{**spec, "requests": requests}]}, f)
    return path


def mixed_reads(namespace: str) -> list[dict]:
    return [
        {"staleList": {"version": "v1", "resource": "namespaces"}, "shares": 2},
        {"quorumGet": {"version": "v1", "resource": "namespaces", "name": namespace}, "shares": 1},
        {
            "quorumList": {"version": "v1", "resource": "configmaps", "namespace": namespace},
            "shares": 1,
        },
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def pushgateway(tmp_path):
    """A real Pushgateway on a free loopback port, stopped after the test."""
    binary = shutil.which(PUSHGATEWAY)
    if binary is None:
        pytest.fail(f"{PUSHGATEWAY} is not installed: run scripts/setup.sh")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            binary,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--persistence.file={tmp_path / 'pushgateway.data'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{PUSHGATEWAY} did not become ready on {url}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_every_sink_and_the_builtin_slos_on_a_real_run(
    kperf_control_plane, namespace, tmp_path
) -> None:
    profile = write_profile(tmp_path, mixed_reads(namespace), total=200, client=4)
    out = tmp_path / "out"
    proc = kperf(
        kperf_control_plane,
        "runner", "run", "--config", str(profile), "--result", str(out / "r.json"),
        "--sink", f"csv:{out}/r.csv", "--sink", f"junit:{out}/r.xml",
        "--sink", f"prometheus:{out}/r.om", "--sink", f"html:{out}/r.html", "--slo",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    report = load_report(out / "r.json")
    # The model reads the real document and writes it back byte for byte.
    assert render_json(report) == (out / "r.json").read_text()

    assert report.slo is not None and report.slo.passed and report.slo.source == "builtin"
    classes = {(c.verb, c.resource, c.scope): c for c in report.slo.checks}
    assert set(classes) == {
        ("LIST", "namespaces", "cluster"),
        ("GET", "namespaces", "resource"),
        ("LIST", "configmaps", "namespace"),
    }
    assert {c.threshold_seconds for c in classes.values()} == {30.0, 1.0, 5.0}
    histograms = report.aggregated.latency_histograms_by_url
    for check in report.slo.checks:
        [key] = check.keys
        assert check.value_seconds == histograms[key].quantile(0.99)
        assert check.count == report.aggregated.requests_by_url[key].succeeded
    assert "SLO (builtin): 3 of 3 classes met their threshold" in proc.stderr

    every = list(csv.DictReader((out / "r.csv").open()))
    rows = [r for r in every if r["spec"] != "server" and not r["windowStartSeconds"]]
    assert len(rows) == 2 * len(report.aggregated.requests_by_url)  # spec 0 + aggregated
    assert sum(int(r["succeeded"]) for r in rows if r["spec"] == "0") == (
        report.aggregated.requests.succeeded
    )
    # and a row per key and one-second window, adding up to the same
    windows = [r for r in every if r["windowStartSeconds"]]
    assert {r["windowSeconds"] for r in windows} == {"1.0"}
    assert sum(int(r["succeeded"]) for r in windows) == report.aggregated.requests.succeeded

    junit = ET.parse(out / "r.xml").getroot()
    assert report.server_slo is not None and report.server_slo.passed
    names = [c.name for c in report.slo.checks]
    assert [c.get("name") for c in junit.iter("testcase")] == names + names  # client, server
    assert junit.get("failures") == "0"

    metrics = (out / "r.om").read_text()
    for key, counts in report.aggregated.requests_by_url.items():
        path = key.split(" ", 1)[1].split("/", 3)[3]
        [line] = [
            m
            for m in metrics.splitlines()
            if m.startswith("kperf_requests_total")
            and f'url="/{path}"' in m
            and 'outcome="succeeded"' in m
        ]
        assert line.endswith(f" {counts.succeeded}")
    assert metrics.endswith("# EOF\n")

    page = (out / "r.html").read_text()
    for check in report.slo.checks:
        assert f"<td>{check.name}</td><td>{check.outcome()}</td>" in page.replace("&lt;", "<")


def create_heavy_configmaps(core_v1, namespace: str, count: int, size: int) -> None:
    from kubernetes import client

    for i in range(count):
        core_v1.create_namespaced_config_map(
            namespace,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=f"heavy-{i}"), data={"blob": "x" * size}
            ),
        )


HEAVY_LIST = [{"quorumList": {"version": "v1", "resource": "configmaps"}, "shares": 1}]


def test_an_slo_breach_provoked_by_heavy_lists_is_detected(
    kperf_control_plane, core_v1, namespace, tmp_path
) -> None:
    # 150 configmaps of 40 kB: every LIST reads 6 MB from etcd and encodes it.
    create_heavy_configmaps(core_v1, namespace, 150, 40_000)
    requests = [
        {
            "quorumList": {"version": "v1", "resource": "configmaps", "namespace": namespace},
            "shares": 1,
        }
    ]
    profile = write_profile(tmp_path, requests, total=30, client=4)
    thresholds = tmp_path / "slo.yaml"
    thresholds.write_text(
        "version: 1\nthresholds:\n- {verbs: [LIST], scopes: [namespace], seconds: 0.005}\n"
    )
    proc = kperf(
        kperf_control_plane,
        "runner", "run", "--config", str(profile), "--result", str(tmp_path / "r.json"),
        "--sink", f"junit:{tmp_path}/r.xml", "--slo", str(thresholds),
    )  # fmt: skip
    assert proc.returncode == 6, proc.stderr
    report = load_report(tmp_path / "r.json")
    assert report.slo is not None and not report.slo.passed
    [check] = report.slo.checks
    assert (check.verb, check.resource, check.scope) == ("LIST", "configmaps", "namespace")
    assert check.value_seconds is not None and check.value_seconds > 0.005
    assert report.server_slo is not None
    [server_check] = report.server_slo.checks
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        f"kperf: error: SLO breached: LIST configmaps (namespace scope): "
        f"p99 {check.value_seconds:.6g} s > 0.005 s ({check.count} calls); "
        f"server: LIST configmaps (namespace scope): {server_check.outcome()}"
    )
    assert "Traceback" not in proc.stderr
    failures = ET.parse(tmp_path / "r.xml").getroot().iter("failure")
    assert [f.get("message") for f in failures] == [check.outcome(), server_check.outcome()]


def test_the_prometheus_sink_pushes_to_a_real_pushgateway(
    kperf_control_plane, namespace, pushgateway, tmp_path
) -> None:
    profile = write_profile(tmp_path, mixed_reads(namespace), total=60)
    proc = kperf(
        kperf_control_plane,
        "runner", "run", "--config", str(profile), "--result", str(tmp_path / "r.json"),
        "--sink", f"prometheus:{pushgateway}", "--slo",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = load_report(tmp_path / "r.json")
    with urllib.request.urlopen(f"{pushgateway}/metrics", timeout=10) as response:
        exposed = response.read().decode()
    pushed = {}
    for line in exposed.splitlines():
        if line.startswith("kperf_requests_total{") and 'outcome="succeeded"' in line:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            assert labels["job"] == "kperf"
            pushed[f"{labels['method']} {labels['url']}"] = float(line.rsplit(" ", 1)[1])
    assert pushed == {
        f"{k.split(' ')[0]} /{k.split('/', 3)[3]}": c.succeeded
        for k, c in report.aggregated.requests_by_url.items()
    }
    assert re.search(r'^kperf_slo_passed\{.*verb="GET".*\} 1$', exposed, re.M)


def test_a_failing_sink_is_one_line_and_the_others_still_write(
    kperf_control_plane, namespace, tmp_path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    blocker = tmp_path / "file"
    blocker.write_text("")
    profile = write_profile(tmp_path, mixed_reads(namespace), total=20)
    proc = kperf(
        kperf_control_plane,
        "runner", "run", "--config", str(profile), "--sink", f"prometheus:{dead}",
        "--sink", f"csv:{blocker}/r.csv", "--sink", f"junit:{tmp_path}/r.xml",
        "--result", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert f"sink prometheus:{dead}: cannot push to {dead}/metrics/job/kperf: " in "\n".join(lines)
    assert f"sink csv:{blocker}/r.csv: cannot create the directory {blocker}: File exists" in lines
    assert lines[-1] == "kperf: error: 2 of 4 sinks failed (see above)"
    assert load_report(tmp_path / "r.json").aggregated.requests.succeeded == 20
    assert (tmp_path / "r.xml").exists()
    assert proc.stdout == ""  # the JSON sink wrote its file: nothing needed rescuing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--sink", "xml:out.xml"],
            "kperf: error: --sink xml:out.xml: unknown sink 'xml' (known: csv, html, json, junit, "
            "prometheus)",
        ),
        (["--sink", "csv", "--sink", "junit"], "kperf: error: --sink csv and junit: only one"),
        (
            ["--slo", "{tmp}/slo.yaml"],
            "kperf: error: {tmp}/slo.yaml:3: thresholds[0].seconds: must be > 0 (got -1.0)",
        ),
    ],
)
def test_bad_output_options_are_one_line_before_any_load(
    kperf_control_plane, apiserver_requests, tmp_path, args, message
) -> None:
    (tmp_path / "slo.yaml").write_text("version: 1\nthresholds:\n- {seconds: -1}\n")
    profile = write_profile(tmp_path, HEAVY_LIST, total=5)
    before = apiserver_requests.scrape()
    proc = kperf(
        kperf_control_plane,
        "runner", "run", "--config", str(profile), *(a.format(tmp=tmp_path) for a in args),
    )  # fmt: skip
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert line.startswith(message.format(tmp=tmp_path))
    after = apiserver_requests.scrape()
    assert apiserver_requests.delta(before, after, "LIST", "configmaps") == {}  # no load ran


def test_compare_is_quiet_on_a_rerun_and_finds_a_real_regression(
    kperf_control_plane, core_v1, namespace, tmp_path
) -> None:
    requests = [
        {
            "quorumList": {"version": "v1", "resource": "configmaps", "namespace": namespace},
            "shares": 1,
        }
    ]
    profile = write_profile(tmp_path, requests, rate=100, duration=3, client=2)

    def run(name: str) -> Path:
        path = tmp_path / name
        proc = kperf(
            kperf_control_plane, "runner", "run", "--config", str(profile), "--result", str(path)
        )
        assert proc.returncode == 0, proc.stderr
        return path

    # Back-to-back runs on the shared 2-core test machine really differ (other processes' load:
    # a re-run's p99 was seen 7x its base's while the suite ran beside other builds), and the
    # tests are right to call that significant; the budget here is the machine's noise, so that
    # the test shows a re-run staying quiet and a call some 50x slower found. The default 10 %
    # budget is covered by the unit tests' controlled histograms.
    budget = ["--budget", "900%"]
    base, rerun = run("base.json"), run("rerun.json")
    quiet = kperf(kperf_control_plane, "report", "compare", str(base), str(rerun), *budget)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert "REGRESSED" not in quiet.stdout

    # The same LIST, now over 300 objects of 40 kB: a genuinely slower API call (p50 ~25x with
    # 150 objects on a busy machine; twice that here, well beyond the budget).
    create_heavy_configmaps(core_v1, namespace, 300, 40_000)
    slower = run("slower.json")
    found = kperf(
        kperf_control_plane, "report", "compare", str(base), str(slower), *budget, "-o", "json"
    )
    assert found.returncode == 6, found.stderr
    rows = {row["key"]: row for row in json.loads(found.stdout)["keys"]}
    [key] = [k for k in rows if k.startswith("LIST ") and namespace in k]
    assert rows[key]["p50"]["regressed"] and rows[key]["p50"]["relative"] > 9.0
    assert rows[key]["p50"]["p_value"] < 0.01
    [error] = found.stderr.splitlines()
    assert error.startswith(f"kperf: error: {slower} regressed beyond the 900% budget")


WRAPPER_PLUGIN = """
import attrs

from kperf_core import hookimpl
from kperf_core.report_model import Report


@hookimpl(wrapper=True)
def kperf_run(run):
    report = yield
    assert isinstance(report, Report), type(report)
    seen = {
        "version": report.kperf.version,
        "serverVersion": report.kperf.server_version,
        "workers": report.kperf.extra["workers"],
        "windows": report.per_spec_results[0].time_series.windows,
        "server": report.server is not None,
    }
    return attrs.evolve(report, extra={**report.extra, "seenByWrapper": seen})
"""


def test_progress_goes_to_stderr_and_a_wrapper_sees_the_complete_typed_report(
    kperf_control_plane, namespace, tmp_path
) -> None:
    (tmp_path / "wrapper_plugin.py").write_text(WRAPPER_PLUGIN)
    profile = write_profile(
        tmp_path, mixed_reads(namespace), rate=40, duration=3, client=4, conns=2
    )
    proc = subprocess.run(
        [*KPERF, "-p", "wrapper_plugin", "runner", "run", "--config", str(profile),
         "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "KUBECONFIG": str(kperf_control_plane.kubeconfig),
            "PYTHONPATH": str(tmp_path),
        },
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # stdout is the report and nothing else
    document = json.loads(proc.stdout)
    # stderr is not a terminal: plain progress lines, the workers' figures added up
    progress = [line for line in proc.stderr.splitlines() if " elapsed " in line]
    assert progress, proc.stderr
    assert re.match(
        r"\[\s*[\d.]+s\] \d+s elapsed  ~\d+s left  sent \d+  [\d.]+ req/s  p50 [\d.]+ ms  "
        r"p99 [\d.]+ ms  \d+ errors  2 workers$",
        progress[0],
    ), progress[0]
    assert "\r" not in proc.stderr
    # the wrapper got the typed report with kperf's facts and the server's view already in it
    seen = document["seenByWrapper"]
    assert seen["version"] == document["kperf"]["version"]
    assert seen["serverVersion"] == document["kperf"]["serverVersion"] != ""
    assert seen["workers"] == 2 and seen["server"] is True
    assert seen["windows"] == document["perSpecResults"][0]["timeSeries"]["windows"] >= 3
