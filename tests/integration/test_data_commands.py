"""`runkperf data configmap|daemonset` on the real control plane: the objects upstream creates,
`list` read back from the cluster, and nothing left after `delete` — the namespace included
when `add` created it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from conftest import delete_namespace

pytestmark = pytest.mark.integration

FAST = ["--stage-delay", "0.1", "--stage-jitter", "0.2"]


@pytest.fixture(scope="module")
def plugin_manager():
    from kperf_core.plugin_manager import KperfPluginManager

    return KperfPluginManager()


@pytest.fixture
def runkperf(kperf_control_plane, tmp_path, monkeypatch, capsys, plugin_manager):
    """``runkperf ARGS`` in this process, as its entry point runs it (the same programs, the same
    error policy, exit code and streams) — without a new interpreter per call: most of a call's
    time here would be Python starting and importing the Kubernetes client."""
    from kperf_core.cli import CliState, run_program
    from kperf_core.cli import runkperf as program

    monkeypatch.setenv("KPERF_STATE_DIR", str(tmp_path / "state"))
    # the kubeconfig named, not left to $KUBECONFIG: the Kubernetes client read that variable
    # when this process imported it, long before this fixture could set it
    kubeconfig = ["--kubeconfig", str(kperf_control_plane.kubeconfig)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()  # what came before is not this call's
        with pytest.raises(SystemExit) as exc:
            # `data configmap|daemonset` take it: `data cm --kubeconfig K add …`
            argv = [*args[:2], *kubeconfig, *args[2:]]
            run_program(program, "runkperf", argv, CliState(plugin_manager))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, exc.value.code or 0, out, err)

    return run


def _gone(read, *args) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        namespace = read(*args)
    except ApiException as exc:
        return exc.status == 404
    return namespace.status.phase == "Terminating"


def test_configmap_set_add_list_delete(runkperf, core_v1) -> None:
    namespace = f"data-{uuid.uuid4().hex[:6]}"
    cm = ["data", "configmap", "--namespace", namespace]
    try:
        added = runkperf(*cm, "add", "cms", "--total", "25", "--group-size", "10", "--size", "200")
        assert added.returncode == 0, added.stderr
        assert added.stderr.splitlines()[-1] == f"configmap set cms: 25 ConfigMaps in {namespace}"

        items = core_v1.list_namespaced_config_map(namespace, label_selector="cmName=cms").items
        assert sorted(c.metadata.name for c in items) == sorted(
            f"runkperf-cm-cms-{i}" for i in range(25)
        )
        assert {len(c.data["data"]) for c in items} == {200}
        assert {c.metadata.labels["app"] for c in items} == {"runkperf"}
        assert sorted({c.metadata.labels["ownerID"] for c in items}) == ["0", "10", "20"]

        assert runkperf(*cm, "list").stdout.splitlines() == [
            "NAME  SIZE  GROUP_SIZE  TOTAL",
            "cms   200   10          25",
        ]
        again = runkperf(*cm, "add", "cms")
        assert again.returncode == 2
        assert "configmap set 'cms' exists already" in again.stderr
        assert "Traceback" not in again.stderr

        deleted = runkperf(*cm, "delete", "cms")
        assert deleted.returncode == 0, deleted.stderr
        assert deleted.stderr.strip() == "configmap set cms: 25 ConfigMaps deleted"
        assert (
            core_v1.list_namespaced_config_map(namespace, label_selector="app=runkperf").items == []
        )
        # add created the namespace, so the last delete removes it
        assert _gone(core_v1.read_namespace, namespace)
        missing = runkperf(*cm, "delete", "cms")
        assert missing.returncode == 2
        assert "configmap set 'cms': none found" in missing.stderr
    finally:
        if not _gone(core_v1.read_namespace, namespace):
            delete_namespace(core_v1, namespace)


def test_configmap_bad_input_creates_nothing(runkperf, core_v1) -> None:
    namespace = f"data-{uuid.uuid4().hex[:6]}"
    bad = runkperf(
        "data", "cm", "--namespace", namespace, "add", "x", "--total", "5", "--qps", "0",
        "--size", "0",
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "runkperf: error: --size must be > 0 (got 0); --qps must be > 0 (got 0.0)"
    )
    assert _gone(core_v1.read_namespace, namespace)  # not even the namespace


def test_an_existing_namespace_is_kept(runkperf, core_v1, namespace) -> None:
    cm = ["data", "cm", "--namespace", namespace]
    assert runkperf(*cm, "add", "mine", "--total", "3", "--group-size", "3").returncode == 0
    assert runkperf(*cm, "delete", "mine").returncode == 0
    assert core_v1.read_namespace(namespace).status.phase == "Active"


def test_daemonset_set_runs_a_pod_per_virtual_node(
    runkperf, core_v1, kube_api, kperf_control_plane, tmp_path
) -> None:
    from kubernetes import client

    apps = client.AppsV1Api(kube_api)
    pool = f"ds{uuid.uuid4().hex[:6]}"
    namespace = f"data-{uuid.uuid4().hex[:6]}"
    ds = ["data", "daemonset", "--namespace", namespace]
    vc = ["-c", "from kperf_core.cli import kperf_main; kperf_main()", "vc", "nodepool"]
    env = {**os.environ, "KPERF_STATE_DIR": str(tmp_path / "state")}
    kubeconfig = ["--kubeconfig", str(kperf_control_plane.kubeconfig)]
    added = subprocess.run(
        [sys.executable, *vc, *kubeconfig, "add", pool, "--nodes", "2", *FAST],
        capture_output=True, text=True, env=env, timeout=180,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    try:
        created = runkperf(*ds, "add", "fake", "--count", "2")
        assert created.returncode == 0, created.stderr
        assert json.loads(runkperf(*ds, "list", "-o", "json").stdout) == [
            {"name": "fake", "namespace": namespace, "count": 2}
        ]

        deadline = time.monotonic() + 90
        while True:
            pods = core_v1.list_namespaced_pod(namespace, label_selector="dsName=fake").items
            running = [p for p in pods if p.status.phase == "Running"]
            if len(running) == 4:
                break
            assert time.monotonic() < deadline, [(p.metadata.name, p.status.phase) for p in pods]
            time.sleep(0.5)
        assert sorted(p.spec.node_name for p in running) == sorted([f"{pool}-0", f"{pool}-1"] * 2)

        deleted = runkperf(*ds, "delete", "fake")
        assert deleted.returncode == 0, deleted.stderr
        assert deleted.stderr.strip() == "daemonset set fake: 2 DaemonSets deleted"
        assert apps.list_namespaced_daemon_set(namespace).items == []
        assert _gone(core_v1.read_namespace, namespace)
    finally:
        if not _gone(core_v1.read_namespace, namespace):
            delete_namespace(core_v1, namespace)
        subprocess.run(
            [sys.executable, *vc, *kubeconfig, "delete", pool],
            capture_output=True, env=env, timeout=180,
        )  # fmt: skip
