"""`runkperf bench` end to end on the local control plane, at a reduced --scale: a third-party case
registered inline, upstream's cases, Ctrl-C, an aborted run's leftovers. Every test checks the
report, what the workload did to the cluster, and that nothing with the run's label remains."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

import click
import pytest

from kperf_core import hookimpl
from kperf_core.bench_run import RUN_LABEL
from kperf_core.cli import CliState, run_program, runkperf
from kperf_core.plugin_manager import KperfPluginManager
from kperf_core.scenarios import BenchReport, Scenario

pytestmark = pytest.mark.integration

RUNKPERF = [sys.executable, "-c", "from kperf_core.cli import runkperf_main; runkperf_main()"]
RUNNER_GROUPS_NAMESPACE = "runnergroups-kperf-io"


@pytest.fixture
def bench_env(kperf_control_plane, tmp_path, monkeypatch) -> dict[str, str]:
    env = {"KUBECONFIG": str(kperf_control_plane.kubeconfig), "KPERF_STATE_DIR": str(tmp_path)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **env}


@pytest.fixture
def run_bench(bench_env, capsys):
    """``runkperf bench ARGS`` in this process as its entry point runs it (the same program, error
    policy, exit code and streams), without a new interpreter per case; the Ctrl-C, --eks and
    warmup tests run the real entry point in a process of its own.
    Returns (the run as a CompletedProcess, its report or None)."""
    pm = KperfPluginManager()

    def run(*args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
        capsys.readouterr()  # what came before is not this run's
        with pytest.raises(SystemExit) as exc:
            # the kubeconfig named, not left to $KUBECONFIG: the Kubernetes client read that
            # variable when this process imported it, before the fixture set it
            kubeconfig = ["--kubeconfig", bench_env["KUBECONFIG"]]
            run_program(runkperf, "runkperf", ["bench", *kubeconfig, *args], CliState(pm))
        out, err = capsys.readouterr()
        proc = subprocess.CompletedProcess(args, exc.value.code or 0, out, err)
        return proc, json.loads(out) if proc.returncode == 0 else None

    return run


def labelled_leftovers(kube_api) -> list[str]:
    """Everything a bench run may create that still exists (by the run label, and the runner
    group's namespace)."""
    from kubernetes import client

    core, batch = client.CoreV1Api(kube_api), client.BatchV1Api(kube_api)
    found = [
        f"{kind} {item.metadata.name}"
        for kind, items in (
            ("namespace", core.list_namespace(label_selector=RUN_LABEL).items),
            ("node", core.list_node(label_selector=RUN_LABEL).items),
            ("configmap", core.list_config_map_for_all_namespaces(label_selector=RUN_LABEL).items),
            ("job", batch.list_job_for_all_namespaces(label_selector=RUN_LABEL).items),
        )
        for item in items
    ]
    namespaces = {n.metadata.name for n in core.list_namespace().items}
    if RUNNER_GROUPS_NAMESPACE in namespaces:
        found.append(f"namespace {RUNNER_GROUPS_NAMESPACE}")
    return found


def simulator_processes(state_dir: str) -> list[int]:
    """Live embedded simulators this test's state directory started."""
    from pathlib import Path

    pids = []
    for pid_file in Path(state_dir).glob("simulators/*/simulator.pid"):
        pid = json.loads(pid_file.read_text())["pid"]
        if Path(f"/proc/{pid}").exists():
            pids.append(pid)
    return pids


# -- a third-party case ---------------------------------------------------------------------------


class PodTemplatesListed(Scenario):
    """A case as a third-party package would write it: objects of its own, listed by runners."""

    name = "podtemplates_listed"
    summary = "N pod templates, listed from the cache"
    options = (click.Option(["--templates"], type=int, default=8, help="Pod templates."),)

    def run(self, bench, options: Mapping[str, Any]) -> BenchReport:
        from kubernetes import client

        namespace = bench.namespace(f"templates-{bench.run_id}")
        templates = bench.settings.scaled(options["templates"])
        for i in range(templates):
            client.CoreV1Api(bench.api).create_namespaced_pod_template(
                namespace,
                {
                    "metadata": {"name": f"t{i}", "labels": bench.labels},
                    "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}},
                },
            )
        spec = {
            "count": 1,
            "loadProfile": {
                "version": 1,
                "description": "podtemplates",
                "specs": [{
                    "rate": 20, "total": bench.settings.scaled(40), "conns": 1, "client": 2,
                    "requests": [{"staleList": {"version": "v1", "resource": "podtemplates",
                                                "namespace": namespace}, "shares": 1}],
                }],
            },
        }  # fmt: skip
        result = bench.run_runner_group(spec)
        return BenchReport(
            description=f"{templates} pod templates in {namespace}",
            load_spec=spec,
            result=result,
            info={"templates": templates, "namespace": namespace},
        )


class ThirdPartyPackage:
    @hookimpl
    def kperf_register_scenarios(self, registry):
        registry.add(PodTemplatesListed)


def test_a_third_party_case_runs_through_runkperf_bench(bench_env, kube_api, capsys) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    # What an aborted earlier run left: the new run removes it and says so.
    core.create_namespace({"metadata": {"name": "aborted-run", "labels": {RUN_LABEL: "old1"}}})
    crd = {
        "metadata": {"name": "leftovers.example.com", "labels": {RUN_LABEL: "old1"}},
        "spec": {
            "group": "example.com", "scope": "Cluster",
            "names": {"plural": "leftovers", "singular": "leftover", "kind": "Leftover"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            }}],
        },
    }  # fmt: skip
    extensions = client.ApiextensionsV1Api(kube_api)
    extensions.create_custom_resource_definition(crd)
    pm = KperfPluginManager(autoload=False)
    pm.register(ThirdPartyPackage(), "third-party")
    kubeconfig = bench_env["KUBECONFIG"]
    args = ["bench", "--kubeconfig", kubeconfig, "--scale", "0.5", "podtemplates_listed",
            "--templates", "6"]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        run_program(runkperf, "runkperf", args, CliState(pm))
    out, err = capsys.readouterr()
    assert exc.value.code == 0, err
    assert (
        "removing what aborted run(s) old1 left: 1 namespaces, 0 ConfigMaps, 0 node pools, 1 CRDs"
        in err
    )
    crds = {c.metadata.name for c in extensions.list_custom_resource_definition().items}
    assert "leftovers.example.com" not in crds
    report = json.loads(out)
    assert report["description"] == f"3 pod templates in {report['info']['namespace']}"
    assert report["info"]["templates"] == 3
    assert report["info"]["scale"] == 0.5
    assert (
        report["info"]["apiserver"]["version"] == client.VersionApi(kube_api).get_code().git_version
    )
    assert report["loadSpec"]["loadProfile"]["specs"][0]["total"] == 20
    assert report["result"]["total"] == 20  # successful requests, upstream's meaning
    assert report["aggregated"]["requests"]["failed"] == 0
    (key,) = report["result"]["requestsByURL"]
    assert f"/namespaces/{report['info']['namespace']}/podtemplates" in key
    # every answer listed the templates the case created
    assert report["result"]["requestsByURL"][key]["receivedBytes"] > 20 * 3 * 100
    assert labelled_leftovers(kube_api) == []
    assert simulator_processes(bench_env["KPERF_STATE_DIR"]) == []


# -- upstream's cases -----------------------------------------------------------------------------


def test_node10_job1_pod100(bench_env, run_bench, kube_api, apiserver_requests) -> None:
    before = apiserver_requests.scrape()
    proc, report = run_bench("--scale", "0.1", "node10_job1_pod100")
    after = apiserver_requests.scrape()
    assert proc.returncode == 0, proc.stderr
    spec = report["loadSpec"]
    assert spec["count"] == 1
    assert spec["loadProfile"]["specs"][0]["total"] == 100
    assert report["result"]["total"] == 100
    assert report["aggregated"]["requests"]["failed"] == 0
    assert sorted(k.split("?")[0].rsplit("/", 1)[1] for k in report["result"]["requestsByURL"]) == [
        "events", "pods", "pods",
    ]  # fmt: skip
    info = report["info"]
    assert (info["nodes"], info["jobPods"], info["jobParallelism"]) == (1, 10, 1)
    assert info["jobsCreated"] >= 1
    assert 10 <= info["runningTime"] < 300  # 100 requests at 10/s, plus start-up
    assert "1 virtual nodes (embedded)" in report["description"]
    # stdout held the report alone (it parsed); the progress went to stderr, as plain lines
    # (stderr is a pipe here): the steps, and the counters of the waits with the Job's progress
    assert "node pool node10job1pod100: 1 nodes Ready" in proc.stderr
    assert re.search(
        r"^\[ *[\d.]+s\] runners finished [01]/1 · "
        r"Job run \d+: \d+ pods running, \d+/10 succeeded$",
        proc.stderr,
        re.MULTILINE,
    ), proc.stderr
    assert "\r" not in proc.stderr  # no live line off a terminal
    # The workload's effect: the Job was created and its controller created pods for it.
    assert sum(apiserver_requests.delta(before, after, "POST", "jobs").values()) >= 1
    assert sum(apiserver_requests.delta(before, after, "POST", "pods").values()) >= 1
    assert labelled_leftovers(kube_api) == []
    assert simulator_processes(bench_env["KPERF_STATE_DIR"]) == []


def test_ctrl_c_removes_everything(bench_env, kube_api) -> None:
    proc = subprocess.Popen(
        [*RUNKPERF, "bench", "--scale", "0.1", "node10_job1_pod100", "--total", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=bench_env,
    )
    lines = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "runner group: running" in line:
                break
        time.sleep(2)  # runners are loading the server
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, "".join(lines) + err
    assert out == ""
    assert "cleaning up" in err and err.rstrip().endswith("Aborted.")
    assert labelled_leftovers(kube_api) == []
    assert simulator_processes(bench_env["KPERF_STATE_DIR"]) == []


def test_list_configmaps(run_bench, kube_api, apiserver_requests) -> None:
    before = apiserver_requests.scrape()
    proc, report = run_bench(
        "--scale", "0.1", "list_configmaps", "--size", "2000", "--group-size", "40",
        "--total", "300",
    )  # fmt: skip
    after = apiserver_requests.scrape()
    assert proc.returncode == 0, proc.stderr
    info = report["info"]
    assert (info["configmapSizeInBytes"], info["configmapAmount"]) == (2000, 103)
    assert 3 <= info["runningTime"] < 300  # 30 requests at 10/s, plus start-up
    assert apiserver_requests.delta(before, after, "POST", "configmaps").get("201", 0) >= 103
    assert report["result"]["total"] == 30
    urls = report["result"]["requestsByURL"]
    # Only the bench's namespace is listed (upstream listed every namespace's ConfigMaps).
    assert all("/namespaces/kperf-configmaps-bench/configmaps" in url for url in urls)
    assert len(urls) == 2  # from the cache and from etcd
    for counts in urls.values():
        # every answer held the 103 ConfigMaps of 2000 B
        assert counts["receivedBytes"] >= counts["succeeded"] * 103 * 2000
    assert "103 ConfigMaps of 2000 B" in report["description"]
    # The server's view of the runners' time (the runner-group server lists its stored results
    # too: at least the runners' 30).
    view = report["server"]
    assert view.get("unavailable") is None
    [lists] = [
        c
        for c in view["calls"]
        if (c["verb"], c["resource"], c["scope"]) == ("LIST", "configmaps", "namespace")
    ]
    assert lists["codes"]["200"] >= 30
    assert labelled_leftovers(kube_api) == []


def test_read_update(run_bench, kube_api) -> None:
    from kubernetes import client

    proc, report = run_bench(
        "--scale", "0.1", "read_update", "--total", "200", "--read-ratio", "0.25"
    )
    assert proc.returncode == 0, proc.stderr
    info = report["info"]
    assert (info["configmapAmount"], info["configmapSizeInBytes"]) == (10, 1024)
    # The runners' patches (to random names among the 10) reached ConfigMaps, and the watches
    # saw each one's creation and each patched one change.
    assert 1 <= info["configmapsPatched"] <= 10
    assert info["watchEvents"] >= 10 + info["configmapsPatched"]
    requests = report["loadSpec"]["loadProfile"]["specs"][0]["requests"]
    assert [r["shares"] for r in requests] == [25, 75]
    assert requests[1]["patch"]["keySpaceSize"] == 10
    by_verb = {
        url.split()[0]: c["succeeded"] for url, c in report["result"]["requestsByURL"].items()
    }
    assert sum(by_verb.values()) == 20  # 200 requests at a tenth
    assert by_verb["PATCH"] > by_verb["LIST"]
    left = client.CoreV1Api(kube_api).list_namespaced_config_map(
        "default", label_selector="cmName=kperf-read-update"
    )
    assert left.items == []
    assert labelled_leftovers(kube_api) == []


def test_timeseries_replay(run_bench, kube_api) -> None:
    proc, report = run_bench("--scale", "0.1", "timeseries_replay", "--duration", "20s")
    assert proc.returncode == 0, proc.stderr
    # --duration sets every phase (upstream: the first only), then the scale shortens them
    assert report["info"]["phases"] == [
        {"rate": 10, "durationSeconds": 2},
        {"rate": 100, "durationSeconds": 2},
        {"rate": 25, "durationSeconds": 2},
    ]
    phases = report["perSpecResults"]
    assert len(phases) == 3
    sent = [p["requests"]["succeeded"] for p in phases]
    # the spike's rate shows: far more requests in phase 2 than in the baseline
    assert sent[1] > 3 * sent[0] > 0
    assert report["aggregated"]["requests"]["failed"] == 0
    assert labelled_leftovers(kube_api) == []


def test_node10_job1_pod1k_reads_objects_that_exist(run_bench, kube_api) -> None:
    proc, report = run_bench("--scale", "0.1", "node10_job1_pod1k", "--total", "300")
    assert proc.returncode == 0, proc.stderr
    info = report["info"]
    assert (info["nodes"], info["jobPods"], info["jobParallelism"]) == (1, 100, 10)
    # kwok's controller pod and node -3 do not exist here: the reads go to a stand-in and node -0
    assert info["readTargets"] == [
        "pod virtualnodes-kperf-io/node10job1pod1k-1 → job1pod1k/node10job1pod1k-1",
        "node node10job1pod1k-3 → node10job1pod1k-0 (the pool has 1)",
    ]
    urls = report["result"]["requestsByURL"]
    assert sum(c["succeeded"] + c["failed"] for c in urls.values()) == 30
    for url, counts in urls.items():
        if "/jobs/batchjobs" not in url:  # the Job is away between its runs, as upstream
            assert counts["failed"] == 0, url
    assert labelled_leftovers(kube_api) == []


EKS_PROVIDER_ID = "aws:///us-west-2a/i-0123456789abcdef0"
#: aws-node's own affinity on EKS (its tolerations take every taint: only this places it)
AWS_NODE_AFFINITY = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
    "nodeSelectorTerms": [{"matchExpressions": [
        {"key": "eks.amazonaws.com/compute-type", "operator": "NotIn", "values": ["fargate"]},
    ]}],
}}}  # fmt: skip


@pytest.fixture
def eks_look_alike(kube_api):
    """What --eks looks for on EKS: an idle m4.large node with a providerID, and kube-system's
    aws-node and kube-proxy DaemonSets tolerating every taint. Removed afterwards."""
    from kubernetes import client

    from kperf_core.cluster_api import ignore_missing

    core, apps = client.CoreV1Api(kube_api), client.AppsV1Api(kube_api)
    node = {
        "metadata": {
            "name": "eks-idle",
            "labels": {"node.kubernetes.io/instance-type": "m4.large"},
        },
        "spec": {"providerID": EKS_PROVIDER_ID},
    }
    created = []
    try:
        core.create_node(node)
        for name, affinity in (("aws-node", AWS_NODE_AFFINITY), ("kube-proxy", None)):
            labels = {"k8s-app": name}
            pod_spec = {
                "containers": [{"name": name, "image": "fake"}],
                "tolerations": [{"operator": "Exists"}],
                **({"affinity": affinity} if affinity else {}),
            }
            apps.create_namespaced_daemon_set("kube-system", {
                "metadata": {"name": name},
                "spec": {"selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels}, "spec": pod_spec}},
            })  # fmt: skip
            created.append(name)
        yield apps
    finally:
        for name in created:
            ignore_missing(apps.delete_namespaced_daemon_set, name, "kube-system")
        ignore_missing(core.delete_node, "eks-idle")


def test_node100_job1_pod3k_on_eks(bench_env, kube_api, eks_look_alike) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    proc = subprocess.Popen(
        [*RUNKPERF, "bench", "--eks", "--scale", "0.01", "node100_job1_pod3k", "--total", "500"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=bench_env,
    )
    # While the run lasts, no pod of the DaemonSets may land on a virtual node of the run's
    on_virtual_nodes = set()
    try:
        while proc.poll() is None:
            for pod in core.list_namespaced_pod("kube-system", label_selector="k8s-app").items:
                if (pod.spec.node_name or "").startswith(("node100job1pod3k-", "runners-")):
                    on_virtual_nodes.add(f"{pod.metadata.name} on {pod.spec.node_name}")
            time.sleep(0.5)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    report = json.loads(out)
    info = report["info"]
    assert (info["nodes"], info["jobPods"], info["jobParallelism"]) == (1, 30, 1)
    assert report["loadSpec"]["count"] == 1
    assert report["result"]["total"] == 5
    assert info["eks"] == {
        "sharedProviderID": EKS_PROVIDER_ID,
        "daemonSetsKeptOff": ["aws-node", "kube-proxy"],
    }
    assert "--eks: kube-system DaemonSets aws-node, kube-proxy kept off the virtual nodes" in err
    assert on_virtual_nodes == set()
    # the DaemonSets are as they were: aws-node's affinity its own, kube-proxy's none again
    apps = eks_look_alike
    aws_node = apps.read_namespaced_daemon_set("aws-node", "kube-system")
    assert kube_api.sanitize_for_serialization(aws_node.spec.template.spec.affinity) == (
        AWS_NODE_AFFINITY
    )
    kube_proxy = apps.read_namespaced_daemon_set("kube-proxy", "kube-system")
    assert kube_proxy.spec.template.spec.affinity is None
    assert labelled_leftovers(kube_api) == []


def test_node100_job10_pod10k(run_bench, kube_api, apiserver_requests) -> None:
    before = apiserver_requests.scrape()
    proc, report = run_bench(
        "--scale", "0.01", "node100_job10_pod10k", "--ttlSecondsAfterFinished", "600"
    )
    after = apiserver_requests.scrape()
    assert proc.returncode == 0, proc.stderr
    info = report["info"]
    assert (info["jobs"], info["podsPerJob"], info["jobParallelism"]) == (10, 10, 1)
    # the case's 10 Jobs (and the runner group's own Job of runners)
    assert apiserver_requests.delta(before, after, "POST", "jobs").get("201", 0) >= 10
    assert 0 <= info["podsSucceeded"] <= 100
    assert report["aggregated"]["requests"]["failed"] == 0  # benchmark-jobs-5 stays (TTL 600)
    assert labelled_leftovers(kube_api) == []


def test_node100_pod10k(run_bench, kube_api, apiserver_requests) -> None:
    before = apiserver_requests.scrape()
    proc, report = run_bench(
        "--scale", "0.005", "node100_pod10k", "--deployments", "10", "--interval", "1s",
        "--total", "3000", "--padding-bytes", "2048",
    )  # fmt: skip
    after = apiserver_requests.scrape()
    assert proc.returncode == 0, proc.stderr
    info = report["info"]
    assert (info["nodes"], info["deployments"], info["replicas"]) == (1, 10, 5)
    assert info["podSizeInBytes"] >= 3 * 1024  # the 2 KiB padding is in every pod
    assert info["rollingRestarts"] >= 1 and info["rollingRestartsFailed"] == 0
    assert info["interval"] == "1s"  # a Go duration in, upstream's string out
    assert apiserver_requests.delta(before, after, "POST", "deployments").get("201") == 10
    # a restart patches the Deployment's template (what `kubectl rollout restart` does)
    assert sum(apiserver_requests.delta(before, after, "PATCH", "deployments").values()) >= 1
    assert report["result"]["total"] == 15
    assert labelled_leftovers(kube_api) == []


def test_cilium_cr_list(run_bench, kube_api) -> None:
    from kubernetes import client

    crds = client.ApiextensionsV1Api(kube_api)
    proc, report = run_bench("--scale", "0.02", "cilium_cr_list")
    assert proc.returncode == 0, proc.stderr
    info = report["info"]
    assert (info["numCiliumIdentities"], info["numCiliumEndpoints"]) == (20, 20)
    assert info["installedCRDs"] == ["ciliumidentities.cilium.io", "ciliumendpoints.cilium.io"]
    urls = report["result"]["requestsByURL"]
    assert sorted(url.split("?")[0].split("/apis/")[1] for url in urls) == [
        "cilium.io/v2/ciliumidentities",
        "cilium.io/v2/namespaces/default/ciliumendpoints",
    ]
    assert report["result"]["total"] == 240  # 12000 at a fiftieth
    for counts in urls.values():
        assert counts["failed"] == 0
        assert counts["receivedBytes"] >= counts["succeeded"] * 20 * 300  # 20 objects each time
    # the CRDs it installed went with the run, and the custom resources with them
    names = {crd.metadata.name for crd in crds.list_custom_resource_definition().items}
    assert not names & set(info["installedCRDs"])
    assert labelled_leftovers(kube_api) == []


@pytest.mark.every_kube_version
def test_warmup_reports_the_servers_cores_or_says_it_cannot(
    bench_env, kube_api, kube_minor
) -> None:
    proc = subprocess.run(
        [*RUNKPERF, "warmup", "--scale", "0.01", "--total", "10000", "--rate", "50",
         "--core-warmup-ready-threshold", "1000"],  # more cores than any server here has
        capture_output=True, text=True, env=bench_env, timeout=600,
    )  # fmt: skip
    document = json.loads(proc.stdout)
    assert document["threshold"] == 1000
    assert document["requests"]["succeeded"] == 100  # 10000 at a hundredth
    assert "node pool warmup: 1 nodes Ready" in proc.stderr
    if kube_minor <= 20:
        # v1.20 has no go_sched_gomaxprocs_threads: the load ran, readiness cannot be told
        assert proc.returncode == 0, proc.stderr
        assert document["cores"] == {"before": {}, "after": {}}
        assert document["ready"] is None
        assert "readiness unknown" in proc.stderr
    else:
        # a current server tells its GOMAXPROCS, here below the threshold: warmup says so
        for moment in ("before", "after"):
            cores = list(document["cores"][moment].values())
            assert cores and all(1 <= c < 1000 for c in cores), document["cores"]
        assert document["ready"] is False
        assert proc.returncode == 1, proc.stderr
        assert "API servers below 1000 cores after warmup" in proc.stderr
    assert labelled_leftovers(kube_api) == []
