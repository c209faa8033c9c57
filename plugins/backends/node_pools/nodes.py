"""What every node-pool backend shares: the Node objects (upstream's labels, taint and sizes) and
how pools are found in a cluster."""

from __future__ import annotations

import collections
import time
from typing import Any

from kperf_core.backends import NodePoolSpec, NodePoolStatus
from kperf_core.cluster_api import ignore_missing
from kperf_core.errors import BackendError, ConfigError
from kperf_core.virtual_nodes import POOL_LABEL, TAINT_KEY, VIRTUAL_NODE_LABEL

#: Upstream's namespace of kwok's controllers.
NAMESPACE = "virtualnodes-kperf-io"
#: kperf: which backend keeps a pool's nodes alive (the embedded simulator serves only its own).
BACKEND_LABEL = "alpha.kperf.io/nodepool-backend"
LEASE_NAMESPACE = "kube-node-lease"


def node_name(pool: str, index: int) -> str:
    return f"{pool}-{index}"


def node_manifest(spec: NodePoolSpec, index: int, backend: str) -> dict[str, Any]:
    """Node ``<pool>-<i>`` as upstream's nodes chart renders it, without status conditions: the
    backend initialises them (kwok's node-initialize stage), so Ready means something runs it."""
    name = node_name(spec.name, index)
    resources = {"cpu": str(spec.cpu), "memory": f"{spec.memory_gib}Gi", "pods": str(spec.max_pods)}
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/role": "agent",
        "node-role.kubernetes.io/agent": "",
        "node.kubernetes.io/exclude-from-external-load-balancers": "true",
        "kubernetes.azure.com/managed": "false",
        VIRTUAL_NODE_LABEL[0]: VIRTUAL_NODE_LABEL[1],
        POOL_LABEL: spec.name,
        BACKEND_LABEL: backend,
        **spec.node_labels,
    }
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "kwok.x-k8s.io/node": "fake",
                "kwok.x-k8s.io/manage": name,
            },
        },
        "spec": {"taints": [{"key": TAINT_KEY, "value": "fake", "effect": "NoSchedule"}]},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "nodeInfo": {
                "architecture": "amd64",
                "containerRuntimeVersion": "kwok",
                "kubeProxyVersion": "fake",
                "kubeletVersion": "fake",
                "operatingSystem": "linux",
                "bootID": "",
                "kernelVersion": "",
                "machineID": "",
                "osImage": "",
                "systemUUID": "",
            },
        },
    }
    if spec.shared_provider_id:
        node["spec"]["providerID"] = spec.shared_provider_id
    return node


def pool_selector(pool: str | None = None) -> str:
    selector = f"{VIRTUAL_NODE_LABEL[0]}={VIRTUAL_NODE_LABEL[1]}"
    return f"{selector},{POOL_LABEL}={pool}" if pool else selector


def is_ready(node: Any) -> bool:
    conditions = (node.status and node.status.conditions) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def list_pools(api: Any) -> list[NodePoolStatus]:
    """Every pool in the cluster with its real ready/desired node counts (upstream prints ``?``)."""
    from kubernetes import client

    nodes = client.CoreV1Api(api).list_node(label_selector=pool_selector()).items
    by_pool: dict[str, list[Any]] = collections.defaultdict(list)
    for node in nodes:
        by_pool[node.metadata.labels[POOL_LABEL]].append(node)
    pools = []
    for name, members in sorted(by_pool.items()):
        capacity = members[0].status.capacity or {}
        pools.append(
            NodePoolStatus(
                name=name,
                backend=members[0].metadata.labels.get(BACKEND_LABEL, "kwok"),
                nodes=len(members),
                ready=sum(is_ready(n) for n in members),
                cpu=capacity.get("cpu", "?"),
                memory=capacity.get("memory", "?"),
                max_pods=capacity.get("pods", "?"),
            )
        )
    return pools


def refuse_existing(api: Any, pool: str) -> None:
    from kubernetes import client

    if client.CoreV1Api(api).list_node(label_selector=pool_selector(pool), limit=1).items:
        raise ConfigError(f"node pool {pool!r} exists already (delete it first)")


def create_nodes(api: Any, spec: NodePoolSpec, backend: str) -> None:
    from kubernetes import client

    core = client.CoreV1Api(api)
    for i in range(spec.nodes):
        core.create_node(node_manifest(spec, i, backend))


def wait_ready(api: Any, spec: NodePoolSpec, timeout: float, diagnose: Any = None) -> None:
    """Wait until every node of the pool is Ready; ``diagnose()`` explains a timeout."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    while True:
        nodes = core.list_node(label_selector=pool_selector(spec.name)).items
        ready = sum(is_ready(n) for n in nodes)
        if ready == spec.nodes:
            return
        if time.monotonic() > deadline:
            detail = f": {diagnose()}" if diagnose else ""
            raise BackendError(
                f"node pool {spec.name!r}: {ready} of {spec.nodes} nodes Ready after "
                f"{timeout:.0f} s{detail}"
            )
        time.sleep(0.2)


def delete_nodes(api: Any, pool: str) -> int:
    """Force-delete the pods bound to the pool's nodes (nothing runs them any more), then the
    nodes and their leases. Returns how many nodes were deleted."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    leases = client.CoordinationV1Api(api)
    names = [n.metadata.name for n in core.list_node(label_selector=pool_selector(pool)).items]
    for name in names:
        for pod in core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={name}").items:
            ignore_missing(
                core.delete_namespaced_pod,
                pod.metadata.name,
                pod.metadata.namespace,
                grace_period_seconds=0,
            )
        ignore_missing(core.delete_node, name)
        ignore_missing(leases.delete_namespaced_lease, name, LEASE_NAMESPACE)
    return len(names)
