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
from conftest import LAST_MINOR_WITH_TOKEN_SECRETS

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


def test_both_kubeconfig_identities_are_admins(kperf_control_plane, kube_version) -> None:
    from kubernetes import client, config

    for context in ("kperf-local", "kperf-local-token"):
        api = config.new_client_from_config(str(kperf_control_plane.kubeconfig), context=context)
        try:
            names = {ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items}
            assert {"default", "kube-system", "kube-public"} <= names
            version = client.VersionApi(api).get_code()
            assert version.git_version == kube_version
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


def test_service_account_tokens_are_issued(core_v1, namespace, kube_minor) -> None:
    from kubernetes import client

    # The token controller fills a token Secret created for a service account (every version;
    # up to 1.23 it also creates one per service account itself, which `namespace` waited for).
    core_v1.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name="token", annotations={"kubernetes.io/service-account.name": "default"}
            ),
            type="kubernetes.io/service-account-token",
        ),
    )
    deadline = time.monotonic() + 30
    while not (core_v1.read_namespaced_secret("token", namespace).data or {}).get("token"):
        assert time.monotonic() < deadline, "the token controller did not fill the Secret"
        time.sleep(0.1)
    attached = core_v1.read_namespaced_service_account("default", namespace).secrets or []
    assert bool(attached) == (kube_minor <= LAST_MINOR_WITH_TOKEN_SECRETS)
    # The TokenRequest API (projected tokens; kperf's local kwok controllers use it).
    issued = core_v1.create_namespaced_service_account_token(
        "default",
        namespace,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
    )
    assert issued.status.token.count(".") == 2  # a signed JWT


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


def test_cli_lifecycle_recovers_from_a_crash_and_leaves_nothing(
    tmp_path: Path, kube_version
) -> None:
    state_dir = tmp_path / "plane"
    up = kperf("local", "up", "--dir", str(state_dir), "--kube-version", kube_version)
    assert up.returncode == 0, up.stderr
    kubeconfig = Path(up.stdout.strip())
    assert kubeconfig == state_dir / "kubeconfig"

    status = kperf("local", "status", "--dir", str(state_dir), "--json")
    assert status.returncode == 0
    first = json.loads(status.stdout)
    assert first["running"] is True
    assert first["version"] == kube_version
    assert first["settings"] == {
        "controller client limits": "--kube-api-qps=500 --kube-api-burst=1000 "
        "(controller-manager, scheduler; defaults 20/30, 50/100)"
    }
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
    fake.write_text(
        '#!/bin/sh\n[ "$1" = --version ] && echo "Kubernetes v1.35.4" && exit 0\n'
        "echo 'fake apiserver: cannot start' >&2\nexit 3\n"
    )
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


def test_a_version_not_provisioned_is_one_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}  # nothing provisioned here
    result = kperf(
        "local", "up", "--dir", str(tmp_path / "plane"), "--kube-version", "v1.31.0", env=env
    )
    assert result.returncode == 5
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"kperf: error: Kubernetes v1.31.0 is not provisioned (nothing in {tmp_path}/kperf/"
        "kube-v1.31.0/bin); run `kperf local provision --kube-version v1.31.0`"
    )
    assert not (tmp_path / "plane").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["up", "--kube-version", "1.35"], "expected v1.MINOR.PATCH, e.g. v1.35.4"),
        (["provision", "--kube-version", "1.35"], "expected v1.MINOR.PATCH, e.g. v1.35.4"),
        (["provision", "--kube-version", "v1.22.0"], "no recipe for Kubernetes v1.22.0"),
    ],
)
def test_a_malformed_or_unbuildable_version_is_one_line(tmp_path: Path, args, message) -> None:
    result = kperf("local", *args, env={**os.environ, "KPERF_LOCAL_DIR": str(tmp_path / "p")})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("kperf: error")]
    assert message in error
