"""Where virtual nodes meet workloads: the labels and taint every node-pool backend gives its
nodes (upstream's names), and how a pod asks to land on them.

Node-pool backends create the nodes; scenarios, data generators and tests place pods on them. Both
sides read these names from here, so neither depends on the other.
"""

from __future__ import annotations

from typing import Any

#: The label every virtual node carries, as (key, value).
VIRTUAL_NODE_LABEL = ("type", "kperf-virtualnodes")
#: The label naming a node's pool.
POOL_LABEL = "alpha.kperf.io/nodepool"
#: The taint (``NoSchedule``) that keeps ordinary pods off virtual nodes.
TAINT_KEY = "kperf.io/nodepool"
#: The image of pods meant for virtual nodes: nothing pulls it.
FAKE_IMAGE = "fake-image"
#: On the local control plane the embedded simulator runs kperf's own pods — those with this
#: label (runner-group servers and runners) — as local processes, on nodes with the second label.
KPERF_POD_LABEL = ("app.kubernetes.io/name", "kperf-runnergroup")
EXECUTOR_NODE_LABEL = ("kperf.io/executes-kperf-pods", "true")


def virtual_node_placement() -> dict[str, Any]:
    """Pod-spec fields that put a pod on virtual nodes, as upstream's workloads do: a required
    node affinity on the virtual-node label and a toleration of the pools' taint."""
    term = {"key": VIRTUAL_NODE_LABEL[0], "operator": "In", "values": [VIRTUAL_NODE_LABEL[1]]}
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [term]}]
                }
            }
        },
        "tolerations": [{"key": TAINT_KEY, "operator": "Exists"}],
    }


def job_on_virtual_nodes(name: str, pods: int, parallelism: int) -> dict[str, Any]:
    """A Job of ``pods`` completions whose pods land on virtual nodes."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completions": pods,
            "parallelism": parallelism,
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    **virtual_node_placement(),
                    "containers": [{"name": "fake", "image": FAKE_IMAGE}],
                }
            },
        },
    }
