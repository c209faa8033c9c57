"""`kperf runnergroup` end to end on the local control plane: a Helm release of the runnergroup
chart, its server pod and the runners' Job executed as local processes by the embedded node
simulator (on a pool made for it), results posted, stored and merged, and nothing left behind."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from conftest import KPERF
from ruamel.yaml import YAML

from kperf_core.metrics import LatencyHistogram

pytestmark = pytest.mark.integration

NAMESPACE = "runnergroups-kperf-io"
EXECUTOR_LABEL = "kperf.io/executes-kperf-pods=true"
RUN_FLAGS = [
    "--runner-image", "kperf.example/kperf:test",
    "--affinity", EXECUTOR_LABEL,
    "--toleration", "kperf.io/nodepool=fake:NoSchedule",
]  # fmt: skip


@pytest.fixture
def kperf_env(kperf_control_plane, tmp_path):
    return {
        **os.environ,
        "KUBECONFIG": str(kperf_control_plane.kubeconfig),
        "KPERF_STATE_DIR": str(tmp_path / "state"),
    }


@pytest.fixture
def kperf(kperf_env):
    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*KPERF, *args], capture_output=True, text=True, env=kperf_env, timeout=timeout
        )

    return run


@pytest.fixture
def executor_pool(kperf):
    """Two virtual nodes whose pods of kperf's runner image the simulator executes."""
    pool = f"rg{uuid.uuid4().hex[:6]}"
    added = kperf("vc", "nodepool", "add", pool, "--nodes", "2", "--node-labels", EXECUTOR_LABEL,
                  "--stage-delay", "0.1", "--stage-jitter", "0.2")  # fmt: skip
    assert added.returncode == 0, added.stderr
    yield pool
    kperf("rg", "delete")
    kperf("vc", "nodepool", "delete", pool)


def _spec(tmp_path: Path, name: str, count: int, namespace: str, total: int) -> str:
    spec = {
        "count": count,
        "loadProfile": {
            "version": 1,
            "description": name,
            "specs": [{
                "rate": 20, "total": total, "conns": 1, "client": 2,
                "requests": [{"staleList": {"version": "v1", "resource": "podtemplates",
                                            "namespace": namespace}, "shares": 1}],
            }],
        },
    }  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    with path.open("w") as f:
        YAML().dump(spec, f)
    return f"file://{path}"


def _kperf_processes() -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"runnergroup" in words and (b"server" in words or b"runner" in words):
            found.append(b" ".join(words).decode(errors="replace"))
    return found


def test_two_groups_run_report_and_leave_nothing(
    kperf, executor_pool, namespace, tmp_path, kube_api, apiserver_requests
) -> None:
    from kubernetes import client

    groups = [_spec(tmp_path, "a", 2, namespace, 30), _spec(tmp_path, "b", 1, namespace, 20)]
    before = apiserver_requests.scrape()
    ran = kperf("rg", "run", "--runnergroup", groups[0], "--runnergroup", groups[1], *RUN_FLAGS)
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr.strip() == "runner groups: 2 placed (helm)"

    result = kperf("rg", "result", "--timeout", "240")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    after = apiserver_requests.scrape()

    by_group = {g["name"]: g for g in report["runnerGroups"]}
    assert sorted(by_group) == ["runnergroup-server-0", "runnergroup-server-1"]
    assert [len(by_group[name]["runners"]) for name in sorted(by_group)] == [2, 1]
    assert report["missing"] == []
    runners = [r for g in report["runnerGroups"] for r in g["runners"]]
    succeeded = sum(r["aggregated"]["requests"]["succeeded"] for r in runners)
    # every runner ran its whole profile: 2 runners x 30 + 1 runner x 20 requests
    assert succeeded == 2 * 30 + 20
    assert report["aggregated"]["requests"]["succeeded"] == succeeded
    assert report["aggregated"]["requests"]["failed"] == 0
    assert apiserver_requests.delta(before, after, "LIST", "podtemplates") == {"200": succeeded}
    assert [s["requests"]["succeeded"] for s in report["perSpecResults"]] == [60, 20]
    # Percentiles come from the merge of every runner's histogram: exactly the same buckets.
    (key,) = report["aggregated"]["latencyHistogramsByURL"]
    merged = LatencyHistogram()
    for runner in runners:
        merged.merge(
            LatencyHistogram.from_dict(runner["aggregated"]["latencyHistogramsByURL"][key])
        )
    assert report["aggregated"]["percentileLatencies"] == merged.percentiles()

    table = kperf("rg", "status")
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()]
    assert rows[0] == ["NAME", "COUNT", "SUCCEEDED", "FAILED", "STATE", "START"]
    assert [row[:5] for row in rows[1:]] == [
        ["runnergroup-server-0", "2", "2", "0", "finished"],
        ["runnergroup-server-1", "1", "1", "0", "finished"],
    ]
    listed = json.loads(kperf("rg", "status", "-o", "json").stdout)
    assert [g["spec"]["count"] for g in listed] == [2, 1]

    rbac = client.RbacAuthorizationV1Api(kube_api)
    rules = rbac.read_cluster_role("runnergroup-server-runner").rules
    assert [(r.api_groups, r.resources, r.verbs) for r in rules] == [
        ([""], ["podtemplates"], ["list"])
    ]
    core = client.CoreV1Api(kube_api)
    server = core.read_namespaced_pod("runnergroup-server", NAMESPACE)
    assert server.spec.containers[0].image == "kperf.example/kperf:test"
    token = base64.b64decode(
        core.read_namespaced_secret("runnergroup-server-token", NAMESPACE).data["token"]
    )
    assert len(token) == 40

    deleted = kperf("rg", "delete")
    assert deleted.returncode == 0, deleted.stderr
    assert NAMESPACE not in {n.metadata.name for n in core.list_namespace().items}
    assert not [
        r for r in rbac.list_cluster_role().items if r.metadata.name.startswith("runnergroup")
    ]
    assert _kperf_processes() == []
    again = kperf("rg", "status")
    assert again.returncode == 2
    assert "no runner groups are placed" in again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runnergroup", "file://relative.yaml"], "needs an absolute path"),
        (["--runnergroup", "/abs/spec.yaml"], "unsupported URI"),
        (["--runnergroup", "file:///no/such/spec.yaml"], "/no/such/spec.yaml: cannot read"),
        (["--runnergroup", "configmap://absent?namespace=default"], "ConfigMap not found"),
        (["--runner-flowcontrol", "workload-low"], "expected PriorityLevelName:MatchingPrecedence"),
        (["--runner-flowcontrol", "no-such-level:100"], "no priority level 'no-such-level'"),
        (["--affinity", "zone"], "expected KEY=VALUE1"),
    ],
)
def test_bad_input_is_one_line_and_installs_nothing(kperf, tmp_path, core_v1, args, message):
    spec = _spec(tmp_path, "ok", 1, "default", 1)
    if "--runnergroup" not in args:
        args = ["--runnergroup", spec, *args]
    proc = kperf("rg", "run", *args, *RUN_FLAGS)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert NAMESPACE not in {n.metadata.name for n in core_v1.list_namespace().items}


def test_an_invalid_profile_is_reported_with_file_and_line(kperf, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "count: 1\nloadProfile:\n  version: 1\n  specs:\n    - rate: -1\n      requests: []\n"
    )
    proc = kperf("rg", "run", "--runnergroup", f"file://{path}", *RUN_FLAGS)
    assert proc.returncode == 2
    assert proc.stderr.startswith("kperf: error: ") and f"{path}:" in proc.stderr
