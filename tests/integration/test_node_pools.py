"""`kperf virtualcluster nodepool` on the real control plane (etcd, apiserver, controller-manager,
scheduler), with both backends — kperf's embedded simulator and the real kwok program (run locally
with the chart's configuration): nodes Ready and kept Ready, a Job's pods scheduled and completed
on them, and nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from conftest import POD_LOG_VERBS, delete_namespace, kperf_command

# CI runs these against the current release and again against v1.20.2 (scripts/test.sh).
pytestmark = [pytest.mark.integration, pytest.mark.every_kube_version]

#: Quick lifecycles, and a readiness wait inside the commands' 180 s: a pool that is slow to be
#: Ready fails with kperf's own account of it (nodes Ready so far, the local kwok's log).
FAST = ["--stage-delay", "0.1", "--stage-jitter", "0.2", "--wait", "120"]
#: Both backends keep nodes alive for real here: the embedded simulator and a local kwok process.
BACKENDS = pytest.mark.parametrize("backend", ["embedded", "kwok"])


@pytest.fixture
def vc(kperf_control_plane, tmp_path):
    """Run ``kperf vc …`` against the local control plane with its own state directory; delete
    every pool a test left behind."""
    base_env = {
        **os.environ,
        "KUBECONFIG": str(kperf_control_plane.kubeconfig),
        "KPERF_STATE_DIR": str(tmp_path / "state"),
    }

    def run(
        *args: str, timeout: float = 180, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return kperf_command(["vc", *args], env={**base_env, **(env or {})}, timeout=timeout)

    yield run
    listed = run("nodepool", "list", "-o", "json")
    for pool in json.loads(listed.stdout or "[]"):
        run("nodepool", "delete", pool["name"])


def _pool_name() -> str:
    return f"np{uuid.uuid4().hex[:6]}"


def _background_processes(tmp_path) -> list[int]:
    """Live processes kperf started for the pools (simulators, local kwok controllers)."""
    pids = []
    for pid_file in (tmp_path / "state").glob("**/*.pid"):
        pid = json.loads(pid_file.read_text())["pid"]
        if (
            os.path.exists(f"/proc/{pid}")
            and "Z" not in open(f"/proc/{pid}/stat").read().split()[2]
        ):
            pids.append(pid)
    return pids


@BACKENDS
def test_a_job_runs_to_completion_on_virtual_nodes(
    vc, kube_api, tmp_path, backend, apiserver_metrics
) -> None:
    from kubernetes import client

    core, batch = client.CoreV1Api(kube_api), client.BatchV1Api(kube_api)
    leases = client.CoordinationV1Api(kube_api)
    pool = _pool_name()
    added = vc(
        "nodepool", "add", pool, "--backend", backend, "--nodes", "10", "--cpu", "4",
        "--memory", "8", *FAST,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert added.stderr.strip() == f"node pool {pool}: 10 nodes Ready ({backend})"

    nodes = core.list_node(label_selector=f"alpha.kperf.io/nodepool={pool}").items
    assert sorted(n.metadata.name for n in nodes) == sorted(f"{pool}-{i}" for i in range(10))
    node = nodes[0]
    assert node.metadata.labels["type"] == "kperf-virtualnodes"
    assert [(t.key, t.value, t.effect) for t in node.spec.taints if t.key.startswith("kperf")] == [
        ("kperf.io/nodepool", "fake", "NoSchedule")
    ]
    assert (node.status.capacity["cpu"], node.status.capacity["memory"]) == ("4", "8Gi")
    # A node lease as the node-lifecycle controller reads it (kwok holds it under its own
    # identity, the simulator under the node's name; both with the chart's 40 s).
    lease = leases.read_namespaced_lease(node.metadata.name, "kube-node-lease")
    assert lease.spec.holder_identity
    assert lease.spec.lease_duration_seconds == 40
    assert time.time() - lease.spec.renew_time.timestamp() < 15

    listed = json.loads(vc("nodepool", "list", "-o", "json").stdout)
    [mine] = [p for p in listed if p["name"] == pool]
    assert (mine["ready"], mine["nodes"], mine["backend"]) == (10, 10, backend)

    namespace = f"vc-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        batch.create_namespaced_job(namespace, _job(100))
        deadline = time.monotonic() + 150
        while (batch.read_namespaced_job("job", namespace).status.succeeded or 0) < 100:
            assert time.monotonic() < deadline, "the Job did not complete on the virtual nodes"
            time.sleep(0.5)
        pods = core.list_namespaced_pod(namespace).items
        assert {p.status.phase for p in pods} == {"Succeeded"}
        assert {p.spec.node_name.rsplit("-", 1)[0] for p in pods} == {pool}
        assert all(p.status.pod_ip for p in pods)
    finally:
        delete_namespace(core, namespace)
    if backend == "kwok":
        # kwok ran as the pool's ServiceAccount: the chart's FlowSchema classified its requests
        # into the chart's priority level (APF's metrics, as the server names them).
        dispatched = apiserver_metrics.total(
            "apiserver_flowcontrol_dispatched_requests_total", flow_schema=pool
        )
        assert dispatched["custom-system"] > 100

    deleted = vc("nodepool", "delete", pool)
    assert deleted.returncode == 0, deleted.stderr
    assert core.list_node(label_selector=f"alpha.kperf.io/nodepool={pool}").items == []
    assert [
        lease.metadata.name
        for lease in leases.list_namespaced_lease("kube-node-lease").items
        if lease.metadata.name.startswith(pool)
    ] == []
    assert [
        p
        for p in core.list_pod_for_all_namespaces().items
        if (p.spec.node_name or "").startswith(pool)
    ] == []
    assert _background_processes(tmp_path) == []  # the last pool took its controller with it
    assert list((tmp_path / "state").glob("*/*")) == []


def _job(pods: int) -> dict:
    from kperf_core.virtual_nodes import job_on_virtual_nodes

    return job_on_virtual_nodes("job", pods, pods)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x", "--nodes", "0"], "--nodes must be > 0 (got 0)"),
        (["x", "--cpu", "-2", "--memory", "0"], "--cpu must be > 0 (got -2); --memory must be > 0"),
        (["pool-controller"], "must not end with '-controller'"),
        (["Bad_Name"], "must be a DNS label"),
        (["x", "--backend", "nope"], "no such node-pool backend (available: embedded, kwok)"),
        (["x", "--node-labels", "novalue"], "--node-labels 'novalue': expected KEY=VALUE"),
    ],
)
def test_bad_input_is_one_line(vc, args, message) -> None:
    proc = vc("nodepool", "add", *args)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr


def test_an_existing_pool_is_refused_and_kept(vc, kube_api) -> None:
    from kubernetes import client

    pool = _pool_name()
    assert vc("nodepool", "add", pool, "--nodes", "2", *FAST).returncode == 0
    again = vc("nodepool", "add", pool, "--nodes", "2", *FAST)
    assert again.returncode == 2
    assert f"node pool {pool!r} exists already" in again.stderr
    nodes = client.CoreV1Api(kube_api).list_node(label_selector=f"alpha.kperf.io/nodepool={pool}")
    assert len(nodes.items) == 2


# -------------------------------------------------------------------------------------------------
# kwok's in-cluster path (--kwok-controllers cluster): real Helm releases; the StatefulSet's pods
# cannot run here (no kubelet), so its objects are checked, not the nodes' readiness.
# -------------------------------------------------------------------------------------------------

KWOK_NAMESPACE = "virtualnodes-kperf-io"
STAGES = {
    "node-initialize",
    "node-heartbeat-with-lease",
    "pod-create",
    "pod-init-container-running",
    "pod-init-container-completed",
    "pod-ready",
    "pod-complete",
    "pod-delete",
}


def _helm_releases(kperf_control_plane) -> set[str]:
    import helm_python as helm

    config = helm.Config(kubeconfig_path=kperf_control_plane.kubeconfig, namespace=KWOK_NAMESPACE)
    return {release["name"] for release in config.list()}


def test_kwok_pool_installs_upstreams_objects_and_removes_them(
    vc, kube_api, kperf_control_plane, flowcontrol_version
) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    pool = _pool_name()
    added = vc(
        "nodepool", "add", pool, "--backend", "kwok", "--kwok-controllers", "cluster",
        "--nodes", "3", "--wait", "0",
        "--affinity", "kperf.io/role=kwok,any", "--node-labels", "zone=a",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert _helm_releases(kperf_control_plane) == {
        "lifecycle-crd",
        "lifecycle-def",
        f"{pool}-controller",
        pool,
    }

    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    rbac, custom = client.RbacAuthorizationV1Api(kube_api), client.CustomObjectsApi(kube_api)
    sts = apps.read_namespaced_stateful_set(pool, KWOK_NAMESPACE)
    assert (sts.spec.replicas, sts.spec.pod_management_policy) == (3, "Parallel")
    container = sts.spec.template.spec.containers[0]
    assert "--manage-single-node=$(POD_NAME)" in container.args
    assert "--node-lease-duration-seconds=40" in container.args
    [term] = (
        sts.spec.template.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
    )
    assert [(e.key, e.values) for e in term.match_expressions] == [
        ("kperf.io/role", ["kwok", "any"])
    ]
    assert core.read_namespaced_service_account(pool, KWOK_NAMESPACE)
    assert (
        "KwokConfiguration"
        in core.read_namespaced_config_map(pool, KWOK_NAMESPACE).data["kwok-config.yaml"]
    )
    role = rbac.read_cluster_role(pool)
    assert any("pods/status" in rule.resources for rule in role.rules)
    assert rbac.read_cluster_role_binding(pool).subjects[0].name == pool
    flow = custom.get_cluster_custom_object(
        "flowcontrol.apiserver.k8s.io", flowcontrol_version, "flowschemas", pool
    )
    assert flow["spec"]["priorityLevelConfiguration"]["name"] == "custom-system"
    custom.get_cluster_custom_object(
        "flowcontrol.apiserver.k8s.io",
        flowcontrol_version,
        "prioritylevelconfigurations",
        "custom-system",
    )
    stages = custom.list_cluster_custom_object("kwok.x-k8s.io", "v1alpha1", "stages")["items"]
    assert {s["metadata"]["name"] for s in stages} == STAGES
    nodes = core.list_node(label_selector=f"alpha.kperf.io/nodepool={pool}").items
    assert sorted(n.metadata.name for n in nodes) == [f"{pool}-{i}" for i in range(3)]
    assert all(n.metadata.labels["zone"] == "a" for n in nodes)
    listed = json.loads(vc("nodepool", "list", "-o", "json").stdout)
    [mine] = [p for p in listed if p["name"] == pool]
    assert (mine["backend"], mine["ready"], mine["nodes"]) == ("kwok", 0, 3)

    deleted = vc("nodepool", "delete", pool)
    assert deleted.returncode == 0, deleted.stderr
    assert _helm_releases(kperf_control_plane) == set()
    assert core.list_node(label_selector=f"alpha.kperf.io/nodepool={pool}").items == []
    for read in (
        lambda: rbac.read_cluster_role(pool),
        lambda: client.ApiextensionsV1Api(kube_api).read_custom_resource_definition(
            "stages.kwok.x-k8s.io"
        ),
        lambda: custom.get_cluster_custom_object(
            "flowcontrol.apiserver.k8s.io", flowcontrol_version, "flowschemas", pool
        ),
    ):
        with pytest.raises(ApiException) as gone:
            read()
        assert gone.value.status == 404
    deadline = time.monotonic() + 60  # the namespace goes once its objects are finalised
    while any(ns.metadata.name == KWOK_NAMESPACE for ns in core.list_namespace().items):
        assert time.monotonic() < deadline, f"namespace {KWOK_NAMESPACE} left behind"
        time.sleep(0.5)


def _exec_kubeconfig(kperf_control_plane, tmp_path):
    """The local plane's token identity behind an exec credential plugin that counts its runs
    in ``tmp_path/runs``."""
    from ruamel.yaml import YAML

    document = YAML(typ="safe").load(kperf_control_plane.kubeconfig.read_text())
    context = next(c for c in document["contexts"] if c["name"] == "kperf-local-token")
    user = next(u for u in document["users"] if u["name"] == context["context"]["user"])
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": user["user"]["token"]},
    }
    plugin = tmp_path / "plugin"
    plugin.write_text(
        f"#!{sys.executable}\n"
        f"with open({str(tmp_path / 'runs')!r}, 'a') as runs:\n"
        "    runs.write('run\\n')\n"
        f"print({json.dumps(credential)!r})\n"
    )
    plugin.chmod(0o755)
    exec_user = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": str(plugin),
        "interactiveMode": "Never",
    }
    document["users"] = [{"name": "exec", "user": {"exec": exec_user}}]
    document["contexts"] = [
        {"name": "exec", "context": {"cluster": context["context"]["cluster"], "user": "exec"}}
    ]
    document["current-context"] = "exec"
    kubeconfig = tmp_path / "exec-kubeconfig"
    kubeconfig.write_text(json.dumps(document))
    return kubeconfig


def test_an_exec_credential_plugin_runs_once_per_command(
    vc, kube_api, kperf_control_plane, tmp_path
) -> None:
    """The engine's reachability check, the kubernetes client and Helm share one load."""
    from kubernetes import client

    kubeconfig = _exec_kubeconfig(kperf_control_plane, tmp_path)
    runs = tmp_path / "runs"
    pool = _pool_name()
    env = {"KUBECONFIG": str(kubeconfig)}
    added = vc(
        "nodepool", "add", pool, "--backend", "kwok", "--kwok-controllers", "cluster",
        "--nodes", "1", "--wait", "0", env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert runs.read_text().count("run") == 1
    assert f"{pool}-controller" in _helm_releases(kperf_control_plane)
    nodes = client.CoreV1Api(kube_api).list_node(label_selector=f"alpha.kperf.io/nodepool={pool}")
    assert [n.metadata.name for n in nodes.items] == [f"{pool}-0"]

    deleted = vc("nodepool", "delete", pool, env=env)
    assert deleted.returncode == 0, deleted.stderr
    assert runs.read_text().count("run") == 2  # one more command, one more run
    assert _helm_releases(kperf_control_plane) == set()


def test_kwok_pool_that_never_gets_ready_is_removed_again(vc, kube_api, kperf_control_plane):
    from kubernetes import client

    pool = _pool_name()
    proc = vc(
        "nodepool", "add", pool, "--backend", "kwok", "--kwok-controllers", "cluster",
        "--nodes", "1", "--wait", "3",
    )  # fmt: skip
    assert proc.returncode == 5, proc.stderr  # a backend failure: no node can run the StatefulSet
    assert proc.stderr.startswith(f"kperf: error: helm install {pool}-controller")
    assert _helm_releases(kperf_control_plane) == set()
    core = client.CoreV1Api(kube_api)
    assert core.list_node(label_selector=f"alpha.kperf.io/nodepool={pool}").items == []


@BACKENDS
def test_leases_keep_virtual_nodes_ready_past_the_grace_period(vc, kube_api, backend) -> None:
    from kubernetes import client

    pool = _pool_name()
    added = vc("nodepool", "add", pool, "--backend", backend, "--nodes", "10", *FAST)
    assert added.returncode == 0, added.stderr
    # The node lifecycle controller marks a node NotReady (and taints it) when neither its status
    # nor its Lease was renewed for --node-monitor-grace-period (40 s by default).
    time.sleep(50)
    core, leases = client.CoreV1Api(kube_api), client.CoordinationV1Api(kube_api)
    nodes = core.list_node(label_selector=f"alpha.kperf.io/nodepool={pool}").items
    assert len(nodes) == 10
    for node in nodes:
        ready = next(c for c in node.status.conditions if c.type == "Ready")
        assert ready.status == "True", (node.metadata.name, ready.reason)
        assert [t.key for t in node.spec.taints] == ["kperf.io/nodepool"]
        lease = leases.read_namespaced_lease(node.metadata.name, "kube-node-lease")
        age = time.time() - lease.spec.renew_time.timestamp()
        assert age < 15, f"lease of {node.metadata.name} renewed {age:.0f} s ago"


def test_get_pod_log_reads_a_virtual_nodes_kubelet_endpoint(
    vc, kube_api, namespace, run_kperf, apiserver_requests
) -> None:
    from kperf_plugins.backends.node_pools.kubelet_logs import log_text
    from kubernetes import client

    pool = _pool_name()
    assert vc("nodepool", "add", pool, "--nodes", "1", *FAST).returncode == 0
    core = client.CoreV1Api(kube_api)
    pod = _job(1)["spec"]["template"]["spec"]
    core.create_namespaced_pod(namespace, {"metadata": {"name": "logger"}, "spec": pod})
    deadline = time.monotonic() + 60
    while core.read_namespaced_pod("logger", namespace).status.phase != "Running":
        assert time.monotonic() < deadline, "the pod never ran on the virtual node"
        time.sleep(0.2)

    before = apiserver_requests.scrape()
    ref = {"namespace": namespace, "name": "logger", "container": "fake", "tailLines": 10}
    proc, report = run_kperf(
        {"version": 1, "specs": [{"total": 20, "requests": [{"getPodLog": ref, "shares": 1}]}]}
    )
    after = apiserver_requests.scrape()
    assert proc.returncode == 0, proc.stderr
    section = report["perSpecResults"][0]
    assert section["requests"]["succeeded"] == 20
    # the apiserver proxied every request to the simulator's kubelet endpoint, which answered
    expected = log_text(namespace, "logger", "fake", 10, None)
    assert section["totalReceivedBytes"] == 20 * len(expected)
    assert apiserver_requests.delta(before, after, POD_LOG_VERBS, "pods") == {"200": 20}


def test_a_refused_node_is_one_line_and_the_pool_is_undone(vc, kube_api) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    pool = _pool_name()
    core.create_node({"metadata": {"name": f"{pool}-1"}})  # not ours: the pool's second name
    try:
        proc = vc("nodepool", "add", pool, "--nodes", "3", *FAST)
        assert proc.returncode == 4
        assert proc.stderr.count("\n") == 1, proc.stderr
        assert "HTTP 409 (Conflict)" in proc.stderr and f"{pool}-1" in proc.stderr
        left = core.list_node(label_selector=f"alpha.kperf.io/nodepool={pool}").items
        assert left == []  # all or nothing; the foreign node is left alone
        assert core.read_node(f"{pool}-1").metadata.name == f"{pool}-1"
    finally:
        core.delete_node(f"{pool}-1")


def test_batch_add_splits_the_nodes_into_pools(vc) -> None:
    prefix = _pool_name()
    added = vc("nodepool", "batch-add", prefix, "--nodes", "5", "--batch-size", "2", *FAST)
    assert added.returncode == 0, added.stderr
    pools = {p["name"]: p for p in json.loads(vc("nodepool", "list", "-o", "json").stdout)}
    assert {
        name: (p["ready"], p["nodes"]) for name, p in pools.items() if name.startswith(prefix)
    } == {
        f"{prefix}-0": (2, 2),
        f"{prefix}-1": (2, 2),
        f"{prefix}-2": (1, 1),
    }
    table = vc("nodepool", "list").stdout.splitlines()
    assert table[0].split() == [
        "NAME",
        "BACKEND",
        "NODES",
        "CPU",
        "MEMORY",
        "MAX",
        "PODS",
        "STATUS",
    ]
    assert any(line.split()[:5] == [f"{prefix}-2", "embedded", "1", "/", "1"] for line in table)


def test_upstream_cli_habits(kperf_control_plane, tmp_path) -> None:
    """--kubeconfig before the sub-command (upstream's place for it), a STATUS column, and
    several pools deleted at once."""
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env.update(KPERF_STATE_DIR=str(tmp_path / "state"), HOME=str(tmp_path))  # no ~/.kube/config
    at = ["--kubeconfig", str(kperf_control_plane.kubeconfig)]

    def nodepool(*args: str) -> subprocess.CompletedProcess[str]:
        return kperf_command(["vc", "nodepool", *at, *args], env=env, timeout=180)

    first, second = _pool_name(), _pool_name()
    try:
        for pool in (first, second):
            added = nodepool("add", pool, "--nodes", "2", *FAST)
            assert added.returncode == 0, added.stderr
        table = nodepool("list").stdout.splitlines()
        assert table[0].split()[-1] == "STATUS"
        rows = {line.split()[0]: line.split() for line in table[1:]}
        assert rows[first][-1] == rows[second][-1] == "Ready"
        assert rows[first][2:5] == ["2", "/", "2"]
    finally:
        deleted = nodepool("delete", first, second, "no-such-pool")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stderr.splitlines() == [
        f"node pool {first}: deleted",
        f"node pool {second}: deleted",
        "node pool no-such-pool: not found, nothing to delete",
    ]
    assert json.loads(nodepool("list", "-o", "json").stdout) == []


def test_local_kwok_that_is_not_installed_is_one_line(vc, kperf_control_plane, tmp_path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "no-cache"), "PATH": os.path.dirname(sys.executable)}
    proc = vc("nodepool", "add", _pool_name(), "--backend", "kwok", env=env)
    assert proc.returncode == 5
    assert proc.stderr == (
        "kperf: error: kwok v0.7.0 is not installed: run `kperf local provision` (it needs a Go "
        "toolchain), or use --backend embedded\n"
    )
    assert _helm_releases(kperf_control_plane) == set()


def test_local_kwok_that_fails_is_reported_and_the_pool_removed(
    vc, kube_api, kperf_control_plane, tmp_path
) -> None:
    from kubernetes import client

    fake = tmp_path / "bin" / "kwok"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'fake kwok: cannot reach anything' >&2\nexit 1\n")
    fake.chmod(0o755)
    env = {
        "XDG_CACHE_HOME": str(tmp_path / "no-cache"),
        "PATH": f"{fake.parent}:{os.path.dirname(sys.executable)}",
    }
    pool = _pool_name()
    proc = vc("nodepool", "add", pool, "--backend", "kwok", "--nodes", "2", "--wait", "5", env=env)
    assert proc.returncode == 5
    assert proc.stderr.startswith(
        f"kperf: error: node pool {pool!r}: 0 of 2 nodes Ready after 5 s: the local kwok "
        "controller is not running; its log:"
    )
    assert proc.stderr.endswith("fake kwok: cannot reach anything\n")
    assert _helm_releases(kperf_control_plane) == set()
    core = client.CoreV1Api(kube_api)
    assert core.list_node(label_selector=f"alpha.kperf.io/nodepool={pool}").items == []
    assert list((tmp_path / "state").glob("*/*")) == []
