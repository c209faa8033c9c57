"""The local control plane: real etcd + kube-apiserver + controller-manager + scheduler."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

KPERF = [sys.executable, "-c", "from kperf_core.cli import kperf_main; kperf_main()"]


def kperf(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KPERF, *args], capture_output=True, text=True, timeout=300, **kwargs)


def port_is_listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_both_kubeconfig_identities_are_admins(kperf_control_plane) -> None:
    from kubernetes import client, config

    for context in ("kperf-local", "kperf-local-token"):
        api = config.new_client_from_config(str(kperf_control_plane.kubeconfig), context=context)
        try:
            names = {ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items}
            assert {"default", "kube-system", "kube-public"} <= names
            version = client.VersionApi(api).get_code()
            assert version.git_version == "v1.20.2"
        finally:
            api.close()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is optional on a machine")
def test_kubectl_get_ns_answers(kperf_control_plane) -> None:
    out = subprocess.run(
        ["kubectl", "--kubeconfig", str(kperf_control_plane.kubeconfig), "get", "ns", "-o", "name"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "namespace/default" in out.stdout.split()


def test_controller_manager_creates_service_account_tokens(core_v1) -> None:
    sa = core_v1.read_namespaced_service_account("default", "default")
    assert sa.secrets, "the token controller did not attach a token secret"
    secret = core_v1.read_namespaced_secret(sa.secrets[0].name, "default")
    assert secret.type == "kubernetes.io/service-account-token"


def test_scheduler_binds_a_pod_to_a_ready_node(core_v1) -> None:
    from kubernetes import client

    node_name = f"kperf-it-node-{uuid.uuid4().hex[:6]}"
    namespace = "default"
    pod_name = f"kperf-it-pod-{uuid.uuid4().hex[:6]}"
    core_v1.create_node(
        client.V1Node(
            metadata=client.V1ObjectMeta(name=node_name, labels={"kperf-it": "yes"}),
            spec=client.V1NodeSpec(
                taints=[client.V1Taint(key="kperf-it", value="yes", effect="NoSchedule")]
            ),
        )
    )
    try:
        core_v1.patch_node_status(
            node_name,
            {
                "status": {
                    "capacity": {"cpu": "4", "memory": "8Gi", "pods": "10"},
                    "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "10"},
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KperfTest",
                            "lastHeartbeatTime": None,
                        }
                    ],
                }
            },
        )
        core_v1.create_namespaced_pod(
            namespace,
            client.V1Pod(
                metadata=client.V1ObjectMeta(name=pod_name),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="c", image="fake-image")],
                    node_selector={"kperf-it": "yes"},
                    tolerations=[client.V1Toleration(key="kperf-it", operator="Exists")],
                ),
            ),
        )
        deadline = time.monotonic() + 60
        bound = None
        while time.monotonic() < deadline and not bound:
            bound = core_v1.read_namespaced_pod(pod_name, namespace).spec.node_name
            time.sleep(0.2)
        assert bound == node_name
    finally:
        core_v1.delete_namespaced_pod(pod_name, namespace, grace_period_seconds=0)
        core_v1.delete_node(node_name)


def test_cli_lifecycle_recovers_from_a_crash_and_leaves_nothing(tmp_path: Path) -> None:
    state_dir = tmp_path / "plane"
    up = kperf("local", "up", "--dir", str(state_dir))
    assert up.returncode == 0, up.stderr
    kubeconfig = Path(up.stdout.strip())
    assert kubeconfig == state_dir / "kubeconfig"

    status = kperf("local", "status", "--dir", str(state_dir), "--json")
    assert status.returncode == 0
    first = json.loads(status.stdout)
    assert first["running"] is True
    pids = {name: c["pid"] for name, c in first["components"].items()}
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}
    ports = json.loads((state_dir / "state.json").read_text())["ports"]

    # `up` on a running plane changes nothing.
    again = kperf("local", "up", "--dir", str(state_dir))
    assert again.returncode == 0
    assert json.loads(kperf("local", "status", "--dir", str(state_dir), "--json").stdout) == first

    # Crash: every process killed, state left behind.
    for pid in pids.values():
        os.kill(pid, 9)
    deadline = time.monotonic() + 10
    while any(pid_alive(p) for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    crashed = kperf("local", "status", "--dir", str(state_dir))
    assert crashed.returncode == 1
    assert "running:    no" in crashed.stdout

    recovered = kperf("local", "up", "--dir", str(state_dir))
    assert recovered.returncode == 0, recovered.stderr
    second = json.loads(kperf("local", "status", "--dir", str(state_dir), "--json").stdout)
    assert second["running"] is True
    assert second["server"] != first["server"] or second["components"] != first["components"]
    new_pids = [c["pid"] for c in second["components"].values()]
    new_ports = json.loads((state_dir / "state.json").read_text())["ports"]

    from kubernetes import client, config

    api = config.new_client_from_config(str(kubeconfig))
    try:
        assert client.CoreV1Api(api).read_namespace("default").metadata.name == "default"
    finally:
        api.close()

    down = kperf("local", "down", "--dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert not state_dir.exists()
    assert not any(pid_alive(p) for p in new_pids)
    assert not any(port_is_listening(p) for p in (*ports.values(), *new_ports.values()))
    assert kperf("local", "status", "--dir", str(state_dir)).returncode == 1


def test_failed_start_reports_the_component_and_cleans_up(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "kube-apiserver"
    fake.write_text("#!/bin/sh\necho 'fake apiserver: cannot start' >&2\nexit 3\n")
    fake.chmod(0o755)
    state_dir = tmp_path / "plane"
    result = kperf("local", "up", "--dir", str(state_dir), "--bin-dir", str(bin_dir))
    assert result.returncode == 5
    assert "kperf: error: kube-apiserver exited during start-up" in result.stderr
    assert "fake apiserver: cannot start" in result.stderr
    assert "Traceback" not in result.stderr
    assert not state_dir.exists(), "the half-started plane (etcd) was not removed"


def test_missing_binary_is_one_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent), "XDG_CACHE_HOME": str(tmp_path)}
    env.pop("KUBEBUILDER_ASSETS", None)
    env.pop("KPERF_BIN_DIR", None)
    result = kperf("local", "up", "--dir", str(tmp_path / "plane"), env=env)
    assert result.returncode == 5
    assert result.stderr.count("\n") <= 2
    assert "not found" in result.stderr and "kperf local provision" in result.stderr
