"""The server's view against the real control plane, on every Kubernetes version kperf provisions
(v1.35 and v1.20.2: two generations of metric names): the apiserver's own counts of the run's
calls, an SLO breach seen on the server's histograms, a /metrics the run may not read, the
switch.
"""

from __future__ import annotations

import os
import subprocess
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import KPERF
from ruamel.yaml import YAML
from test_results import create_heavy_configmaps, write_profile

from kperf_core.report_model import load_report

pytestmark = [pytest.mark.integration, pytest.mark.every_kube_version]


def kperf(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KPERF, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
    )


def test_the_server_view_counts_exactly_the_runs_calls(
    kperf_control_plane, core_v1, namespace, apiserver_requests, tmp_path
) -> None:
    from kubernetes import client

    core_v1.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="one"), data={"a": "b"})
    )
    requests = [
        {"quorumList": {"version": "v1", "resource": "configmaps", "namespace": namespace},
         "shares": 2},
        {"quorumGet": {"version": "v1", "resource": "configmaps", "namespace": namespace,
                       "name": "one"}, "shares": 1},
    ]  # fmt: skip
    profile = write_profile(tmp_path, requests, total=150, client=4)
    before = apiserver_requests.scrape()
    proc = kperf(
        kperf_control_plane.kubeconfig,
        "runner", "run", "--config", str(profile), "--result", str(tmp_path / "r.json"),
        "--sink", f"csv:{tmp_path}/r.csv", "--sink", f"html:{tmp_path}/r.html", "--slo",
    )  # fmt: skip
    after = apiserver_requests.scrape()
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr
    report = load_report(tmp_path / "r.json")
    view = report.server
    assert view is not None and view.unavailable is None
    rows = {row.key: row for row in view.calls}
    client_calls = report.aggregated.calls()
    assert {call.key for call in client_calls} == {
        ("LIST", "configmaps", "namespace"),
        ("GET", "configmaps", "resource"),
    }
    for call, totals in client_calls.items():
        row = rows[call.key]
        # The apiserver's own counter, read by the test around the command, agrees exactly.
        own = apiserver_requests.delta(before, after, call.verb, "configmaps")
        assert row.codes == own == {"200": totals.requests}
        assert row.count == totals.requests == totals.histogram.count
        # The duration histogram saw every one of them (all codes; the client's, the successes).
        assert row.latency is not None and row.latency.count == row.count
        assert sum(n for _, n in row.latency.buckets) == row.count
        assert row.latency.sum_seconds > 0
    assert sum(t.requests for t in client_calls.values()) == 150

    # Each quorum LIST reached etcd: as a range read of the configmaps up to v1.30; since, as a
    # read of the current revision before the watch cache serves the list (consistent reads from
    # the cache). The admin's requests are exempt from APF.
    configmap_reads = sum(
        e.latency.count
        for e in view.etcd_requests
        if e.object in ("configmaps", "*[]core.ConfigMap", "*core.ConfigMap")
    )
    assert configmap_reads >= rows["LIST", "configmaps", "namespace"].count
    exempt = [f for f in view.flow_control if f.priority_level == "exempt"]
    assert sum(f.dispatched for f in exempt) >= 150

    assert report.server_slo is not None and report.server_slo.passed
    assert [c.name for c in report.server_slo.checks] == [c.name for c in report.slo.checks]
    assert "SLO (server's data, builtin): 2 of 2 classes met their threshold" in proc.stderr
    csv_rows = [line.split(",") for line in (tmp_path / "r.csv").read_text().splitlines()]
    server_rows = {(r[1], r[3], r[4]): int(r[5]) for r in csv_rows if r[0] == "server"}
    assert (
        server_rows["LIST", "configmaps", "namespace"]
        == rows["LIST", "configmaps", "namespace"].count
    )
    assert 'aria-label="client vs server latency per call"' in (tmp_path / "r.html").read_text()


def test_an_slo_breach_by_heavy_cluster_wide_lists_is_seen_on_the_servers_data(
    kperf_control_plane, core_v1, namespace, tmp_path
) -> None:
    # 150 configmaps of 40 kB: every cluster-wide LIST reads and encodes 6 MB (0.25-2 s here).
    create_heavy_configmaps(core_v1, namespace, 150, 40_000)
    profile = write_profile(
        tmp_path,
        [{"quorumList": {"version": "v1", "resource": "configmaps"}, "shares": 1}],
        total=20,
        client=4,
    )
    # 0.05 s is a bucket bound of the server's histograms in every release: an exact verdict.
    thresholds = tmp_path / "slo.yaml"
    thresholds.write_text(
        "version: 1\nthresholds:\n- {verbs: [LIST], scopes: [cluster], seconds: 0.05}\n"
    )
    proc = kperf(
        kperf_control_plane.kubeconfig,
        "runner", "run", "--config", str(profile), "--result", str(tmp_path / "r.json"),
        "--sink", f"junit:{tmp_path}/r.xml", "--slo", str(thresholds),
    )  # fmt: skip
    assert proc.returncode == 6, proc.stderr
    report = load_report(tmp_path / "r.json")
    assert report.slo is not None and report.server_slo is not None
    [client_check], [server_check] = report.slo.checks, report.server_slo.checks
    assert server_check.name == client_check.name == "LIST configmaps (cluster scope)"
    assert not server_check.passed and server_check.count == 20
    assert server_check.value_seconds is not None and server_check.value_seconds > 0.05
    last = proc.stderr.strip().splitlines()[-1]
    assert last.endswith(f"; server: LIST configmaps (cluster scope): {server_check.outcome()}")
    failures = [f.get("message") for f in ET.parse(tmp_path / "r.xml").getroot().iter("failure")]
    assert failures == [client_check.outcome(), server_check.outcome()]


def token_kubeconfig(core_v1, rbac, namespace: str, source: Path, target: Path) -> Path:
    """A kubeconfig for a service account that may list and get configmaps in ``namespace``,
    and nothing else (not /metrics)."""
    from kubernetes import client

    name = f"reader-{uuid.uuid4().hex[:6]}"
    core_v1.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
    )
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name=name),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"],
                                       verbs=["get", "list"])],
        ),
    )  # fmt: skip
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=name),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name=name
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name=name, namespace=namespace)],
        ),
    )
    token = core_v1.create_namespaced_service_account_token(
        name, namespace, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=["https://kubernetes.default.svc.cluster.local"], expiration_seconds=3600))
    ).status.token  # fmt: skip
    config = YAML(typ="safe").load(source.read_text())
    cluster = config["clusters"][0]
    config["users"] = [{"name": name, "user": {"token": token}}]
    config["contexts"] = [{"name": name, "context": {"cluster": cluster["name"], "user": name}}]
    config["current-context"] = name
    with target.open("w") as f:
        YAML().dump(config, f)
    return target


def test_a_forbidden_metrics_endpoint_is_one_warning_and_the_switch_turns_the_view_off(
    kperf_control_plane, core_v1, kube_api, namespace, tmp_path
) -> None:
    from kubernetes import client

    kubeconfig = token_kubeconfig(
        core_v1, client.RbacAuthorizationV1Api(kube_api), namespace,
        kperf_control_plane.kubeconfig, tmp_path / "reader.kubeconfig",
    )  # fmt: skip
    requests = [
        {
            "quorumList": {"version": "v1", "resource": "configmaps", "namespace": namespace},
            "shares": 1,
        }
    ]
    profile = write_profile(tmp_path, requests, total=20, client=2)
    proc = kperf(
        kubeconfig, "runner", "run", "--config", str(profile),
        "--result", str(tmp_path / "r.json"), "--slo",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "kperf: warning: no server view: GET /metrics answered HTTP 403: the run's credentials "
        "may not read it (RBAC: verb get on nonResourceURL /metrics)"
    ]
    assert "Traceback" not in proc.stderr
    report = load_report(tmp_path / "r.json")
    assert report.server is not None and "HTTP 403" in (report.server.unavailable or "")
    assert report.server.calls == ()
    assert report.aggregated.requests.succeeded == 20
    assert report.slo is not None and report.slo.passed and report.server_slo is None

    # Switched off, the same refusing server costs no warning: /metrics is not even asked for.
    proc = kperf(
        kubeconfig, "runner", "run", "--config", str(profile),
        "--result", str(tmp_path / "off.json"), "--no-server-metrics", "--slo",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr
    report = load_report(tmp_path / "off.json")
    assert report.server is None and report.server_slo is None
    assert report.slo is not None and report.slo.passed
