"""`kperf runner run --workers N`: engine processes sharing each spec, one report that adds up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import KPERF, make_configmaps, spec

pytestmark = pytest.mark.integration

WORKERS = 2


def test_workers_share_the_spec_and_their_report_adds_up(
    core_v1, namespace, run_kperf, apiserver_requests
) -> None:
    make_configmaps(core_v1, namespace, "wk", 3)
    ref = {"version": "v1", "resource": "configmaps", "namespace": namespace}
    before = apiserver_requests.scrape()
    proc, report = run_kperf(
        spec(
            [
                {"watch": {**ref, "watchers": 3}},
                {"put": {**ref, "name": "wk", "keySpaceSize": 3, "payloadSize": 8}, "shares": 1},
                {"staleGet": {**ref, "name": "wk-0"}, "shares": 1},
            ],
            rate=40,
            duration=3,
            conns=2,
            client=4,
            total=0,
        ),
        "--workers",
        str(WORKERS),
        "--seed",
        "5",
    )
    time.sleep(1)  # the apiserver counts a watch when it ends
    after = apiserver_requests.scrape()
    assert proc.returncode == 0, proc.stderr
    apiserver_requests.assert_accounted(report, before, after)
    assert report["kperf"]["workers"] == WORKERS
    section = report["perSpecResults"][0]
    assert section["load"]["workers"] == WORKERS
    # each worker read the put's objects once; together they kept the rate and the watchers
    prepare = section["requestsOutsideLoad"]["prepare"]
    assert sum(sum(codes.values()) for codes in prepare.values()) == WORKERS
    assert abs(section["load"]["achievedRate"] - 40) < 4
    assert section["connections"]["load"]["limit"] == 2
    assert section["connections"]["background"]["sessions"] == 3
    [facts] = [f for f in section["requestTypeFacts"] if f["type"] == "watch"]
    assert facts["lists"] == 3  # every watcher listed once, whichever worker it ran in


@pytest.mark.parametrize("whom", ["group", "parent"])
def test_workers_stop_and_report_on_ctrl_c_or_sigterm(kperf_control_plane, tmp_path, whom) -> None:
    profile = tmp_path / "long.yaml"
    profile.write_text(
        "version: 1\nspecs:\n- rate: 50\n  duration: 60\n  conns: 2\n  client: 2\n  requests:\n"
        "  - staleList: {version: v1, resource: namespaces}\n    shares: 1\n"
    )
    result = tmp_path / "report.json"
    proc = subprocess.Popen(
        [*KPERF, "runner", "run", "--config", str(profile), "--result", str(result),
         "--workers", str(WORKERS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "KUBECONFIG": str(kperf_control_plane.kubeconfig)},
        start_new_session=True,  # a group of its own, as a terminal's job
    )  # fmt: skip
    time.sleep(4)
    if whom == "group":  # Ctrl-C in a terminal: every process of the job
        os.killpg(proc.pid, signal.SIGINT)
    else:  # a pod being deleted: its first process only
        proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    report = json.loads(result.read_text())
    section = report["perSpecResults"][0]
    assert section["load"]["endedBy"] == "interrupted"
    assert section["load"]["workers"] == WORKERS
    assert 0 < section["requests"]["succeeded"] < 50 * 60 / 2  # stopped long before its end
    with pytest.raises(ProcessLookupError):  # no worker left behind
        os.killpg(proc.pid, 0)


def test_a_worker_without_a_background_session_runs_its_load(namespace, run_kperf) -> None:
    ref = {"version": "v1", "resource": "configmaps", "namespace": namespace}
    proc, report = run_kperf(
        spec(
            [{"watch": ref}, {"staleList": ref, "shares": 1}],
            rate=20,
            duration=2,
            conns=2,
            client=2,
            total=0,
        ),
        "--workers",
        str(WORKERS),
    )
    assert proc.returncode == 0, proc.stderr
    section = report["perSpecResults"][0]
    assert section["connections"]["background"]["sessions"] == 1  # one watcher, in one worker
    assert section["load"]["workers"] == WORKERS
    assert abs(section["load"]["achievedRate"] - 20) < 3
