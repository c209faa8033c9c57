"""`kperf runnergroup` end to end on the local control plane: a Helm release of the runnergroup
chart, its server pod and the runners' Job executed as local processes by the embedded node
simulator (on a pool made for it), results posted, stored and merged, and nothing left behind."""

from __future__ import annotations

import base64
import csv
import json
import os
import signal
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import KPERF
from ruamel.yaml import YAML

from kperf_core.metrics import LatencyHistogram

pytestmark = [pytest.mark.integration, pytest.mark.every_kube_version]

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


def _pod_processes(kperf_env, command: bytes) -> dict[str, int]:
    """Pod name → pid of the ``kperf runnergroup <command>`` processes this test's simulator runs
    (other sessions on the machine may run their own)."""
    simulators = {
        json.loads(pid_file.read_text())["pid"]
        for pid_file in Path(kperf_env["KPERF_STATE_DIR"]).glob("simulators/*/simulator.pid")
    }
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            words = (proc / "cmdline").read_bytes().split(b"\0")
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if parent in simulators and b"runnergroup" in words and command in words:
            env = dict(item.decode().partition("=")[::2] for item in environ if b"=" in item)
            found[env["HOSTNAME"]] = int(proc.name)
    return found


def _check_installed_objects(kube_api, uris: list[str]) -> None:
    """What the chart and the server created: image, args, affinity, FlowSchema, specs, Jobs."""
    from kubernetes import client

    core, batch = client.CoreV1Api(kube_api), client.BatchV1Api(kube_api)
    server = core.read_namespaced_pod("runnergroup-server", NAMESPACE)
    container = server.spec.containers[0]
    assert container.image == "kperf.example/kperf:test"
    assert container.command[:3] == ["kperf", "runnergroup", "server"]
    assert [a for a in container.command if a.startswith("--runnergroup=")] == [
        f"--runnergroup=configmap://runnergroup-server-spec?namespace={NAMESPACE}&specName=group-{i}"
        for i in range(len(uris))
    ]
    required = (
        server.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    )
    (term,) = required.node_selector_terms
    assert [(e.key, e.operator, e.values) for e in term.match_expressions] == [
        ("kperf.io/executes-kperf-pods", "In", ["true"])
    ]
    specs = core.read_namespaced_config_map("runnergroup-server-spec", NAMESPACE).data
    for i, uri in enumerate(uris):
        original = YAML(typ="safe").load(Path(uri.removeprefix("file://")).read_text())
        stored = YAML(typ="safe").load(specs[f"group-{i}"])
        # --affinity replaced the spec's nodeAffinity; the rest is the file's
        assert stored == {**original, "nodeAffinity": {"kperf.io/executes-kperf-pods": ["true"]}}
        job = batch.read_namespaced_job(f"runnergroup-server-{i}", NAMESPACE)
        assert job.spec.completions == job.spec.parallelism == original["count"]
        assert job.metadata.owner_references[0].name == "runnergroup-server"
        assert job.spec.template.spec.service_account_name == "runnergroup-server-runner"
    levels = {
        g.name: [v.version for v in g.versions]
        for g in client.ApisApi(kube_api).get_api_versions().groups
    }["flowcontrol.apiserver.k8s.io"]
    version = next(v for v in ("v1", "v1beta3", "v1beta2", "v1beta1") if v in levels)
    schema = client.CustomObjectsApi(kube_api).get_cluster_custom_object(
        "flowcontrol.apiserver.k8s.io", version, "flowschemas", "runnergroup-server-runner"
    )["spec"]
    assert schema["priorityLevelConfiguration"] == {"name": "workload-low"}
    assert schema["matchingPrecedence"] == 1000
    assert schema["rules"][0]["subjects"] == [{
        "kind": "ServiceAccount",
        "serviceAccount": {"name": "runnergroup-server-runner", "namespace": NAMESPACE},
    }]  # fmt: skip
    role = client.RbacAuthorizationV1Api(kube_api).read_namespaced_role(
        "runnergroup-server", NAMESPACE
    )
    assert {(r.api_groups[0], r.resources[0]): sorted(r.verbs) for r in role.rules} == {
        ("batch", "jobs"): ["create", "get", "list", "watch"],
        ("", "pods"): ["get", "list", "watch"],
        ("", "configmaps"): ["create", "get", "list"],
    }


def test_two_groups_run_report_and_leave_nothing(
    kperf, kperf_env, executor_pool, namespace, tmp_path, kube_api, apiserver_requests
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
    # The server's view, from before the first runner started to after the last one finished:
    # the server pod read /metrics with its own service account.
    view = report["server"]
    assert (view["source"], view.get("unavailable")) == ("GET /metrics", None)
    [call] = [c for c in view["calls"] if (c["verb"], c["resource"]) == ("LIST", "podtemplates")]
    assert call["codes"] == {"200": succeeded}
    assert call["latency"]["count"] == succeeded
    _check_merged_exactly(report, runners)
    _check_delivered_to_sinks(kperf, tmp_path, succeeded)

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
    _check_installed_objects(kube_api, groups)
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
    assert _pod_processes(kperf_env, b"server") == _pod_processes(kperf_env, b"runner") == {}
    again = kperf("rg", "status")
    assert again.returncode == 2
    assert "no runner groups are placed" in again.stderr


def _check_merged_exactly(report: dict, runners: list[dict]) -> None:
    """Every runner's windows merged: per key, the windows add up to the merged counts; the
    percentiles come from the merge of every runner's histogram, exactly the same buckets."""
    for spec in report["perSpecResults"]:
        for url, counts in spec["requestsByURL"].items():
            columns = spec["timeSeries"]["byURL"][url]
            assert sum(columns["succeeded"]) == counts["succeeded"]
            assert sum(columns["failed"]) == counts["failed"]
    (key,) = report["aggregated"]["latencyHistogramsByURL"]
    merged = LatencyHistogram()
    for runner in runners:
        merged.merge(
            LatencyHistogram.from_dict(runner["aggregated"]["latencyHistogramsByURL"][key])
        )
    assert report["aggregated"]["percentileLatencies"] == merged.percentiles()


def _check_delivered_to_sinks(kperf, tmp_path, succeeded: int) -> None:
    """The merged report goes to sinks and SLO checks as a runner's does."""
    delivered = kperf(
        "rg", "result", "--no-wait", "--slo",
        "--sink", f"csv:{tmp_path}/rg.csv", "--sink", f"junit:{tmp_path}/rg.xml",
    )  # fmt: skip
    assert delivered.returncode == 0, delivered.stderr
    assert delivered.stdout == ""
    assert "SLO (builtin): 1 of 1 classes met their threshold" in delivered.stderr
    assert "SLO (server's data, builtin): 1 of 1 classes met their threshold" in delivered.stderr
    client_case, server_case = ET.parse(tmp_path / "rg.xml").getroot().iter("testcase")
    for case in (client_case, server_case):
        assert case.get("name") == "LIST podtemplates (namespace scope)"
        assert f"({succeeded} calls)" in case.findtext("system-out", "")
    assert server_case.get("classname") == "slo.server.namespace.LIST"
    aggregated = [
        r for r in csv.DictReader((tmp_path / "rg.csv").open()) if r["spec"] == "aggregated"
    ]
    assert [int(r["succeeded"]) for r in aggregated] == [succeeded]


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


def _wait_for(what: str, probe, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def test_faults_lose_no_posted_result_and_name_the_dead_runner(
    kperf, kperf_env, executor_pool, namespace, tmp_path, kube_api
) -> None:
    """Group 0 (its spec in a ConfigMap): three runners post, then the server is killed (it
    restarts in place: nothing lost); group 1's only runner is killed mid-run (its Job fails;
    the summary names it)."""
    from kperf_plugins.backends.runner_groups.client import ServerClient
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    short_file = _spec(tmp_path, "short", 3, namespace, 20)  # 1 s per runner at 20 req/s
    core.create_namespaced_config_map(namespace, {
        "metadata": {"name": "specs"},
        "data": {"short": Path(short_file.removeprefix("file://")).read_text()},
    })  # fmt: skip
    short = f"configmap://specs?namespace={namespace}&specName=short"
    long = _spec(tmp_path, "long", 1, namespace, 400)  # 20 s
    placed = kperf("rg", "run", "--runnergroup", short, "--runnergroup", long, *RUN_FLAGS)
    assert placed.returncode == 0, placed.stderr
    second = kperf("rg", "run", "--runnergroup", short, *RUN_FLAGS)
    assert second.returncode == 2
    assert "runner groups are placed already" in second.stderr

    wrong = ServerClient(
        kube_api, NAMESPACE, "runnergroup-server", 8080, "runnergroup-server-token"
    )
    wrong._token = "not-the-token"
    status, body = wrong.get("/v1/runnergroups")
    assert (status, body["error"]) == (401, "missing or wrong runner-group token")

    _wait_for("group 0's results", lambda: len(core.list_namespaced_config_map(
        NAMESPACE, label_selector="app.kubernetes.io/component=result").items) == 3)  # fmt: skip
    (server_pid,) = _pod_processes(kperf_env, b"server").values()
    os.killpg(server_pid, signal.SIGKILL)  # the container dies: its whole process group
    runners = _pod_processes(kperf_env, b"runner")
    (dead,) = [name for name in runners if name.startswith("runnergroup-server-1-")]
    os.killpg(runners[dead], signal.SIGKILL)

    result = kperf("rg", "result", "--timeout", "120")
    assert result.returncode == 0, result.stderr
    assert f"runners without a result: {dead}" in result.stderr
    report = json.loads(result.stdout)
    posted, failed = report["runnerGroups"]
    assert (posted["succeeded"], len(posted["runners"]), posted["missing"]) == (3, 3, [])
    assert (failed["failed"], failed["runners"], failed["missing"]) == (1, [], [dead])
    assert report["missing"] == [dead]
    assert report["aggregated"]["requests"]["succeeded"] == 3 * 20
    # The restarted server kept the snapshot its first process took before the runners started:
    # the view counts group 0's runners (and what the killed runner sent) whole.
    [call] = [
        c
        for c in report["server"]["calls"]
        if (c["verb"], c["resource"]) == ("LIST", "podtemplates")
    ]
    assert call["codes"]["200"] >= 3 * 20
    server = core.read_namespaced_pod("runnergroup-server", NAMESPACE)
    assert server.status.container_statuses[0].restart_count == 1
    assert _pod_processes(kperf_env, b"server")["runnergroup-server"] != server_pid


def test_an_unreachable_api_server_is_one_line(kperf, kperf_control_plane, tmp_path) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    text = Path(kperf_control_plane.kubeconfig).read_text()
    server = kperf_control_plane.server
    dead = tmp_path / "dead-kubeconfig"
    dead.write_text(text.replace(server, f"https://127.0.0.1:{port}"))
    for command in (["status"], ["result", "--no-wait"], ["delete"]):
        proc = kperf("rg", *command, "--kubeconfig", str(dead))
        assert proc.returncode == 4, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr


def test_ctrl_c_during_run_removes_what_was_installed(
    kperf_env, executor_pool, tmp_path, core_v1
) -> None:
    spec = _spec(tmp_path, "interrupted", 1, "default", 1)
    proc = subprocess.Popen(
        [*KPERF, "rg", "run", "--runnergroup", spec, *RUN_FLAGS],
        env=kperf_env,
        stderr=subprocess.PIPE,
        text=True,
    )
    # interrupt once Helm created the namespace: the install is under way
    _wait_for("the release's namespace", lambda: NAMESPACE in {
        n.metadata.name for n in core_v1.list_namespace().items})  # fmt: skip
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert NAMESPACE not in {n.metadata.name for n in core_v1.list_namespace().items}
    assert _pod_processes(kperf_env, b"server") == {}
