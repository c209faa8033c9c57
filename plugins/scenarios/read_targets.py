"""Upstream's read mixes GET single objects by name: a node of the pool, a pod of kwok's
controllers. At ``--scale`` below 1, or with a backend that runs no controller pods (the embedded
simulator), those names would not exist and every such GET would be a 404 — so they are pointed
at objects that do: the pool's last node when the named one is beyond it, and a pod of the
run's own standing in for the kwok controller pod."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from kperf_core.virtual_nodes import FAKE_IMAGE, virtual_node_placement

if TYPE_CHECKING:
    from kperf_core.bench_run import BenchRun

#: Upstream's namespace of kwok's controller pods.
KWOK_NAMESPACE = "virtualnodes-kperf-io"


def fit_read_targets(
    bench: BenchRun, spec: dict[str, Any], pool: str, nodes: int, namespace: str = ""
) -> list[str]:
    """Retarget ``spec``'s GETs (in place); return what changed, for the report."""
    changes = []
    node = re.compile(rf"{re.escape(pool)}-(\d+)")
    for item in spec["loadProfile"]["specs"][0]["requests"]:
        request = next(value for key, value in item.items() if key != "shares")
        selector = request.get("fieldSelector", "")
        on_node = node.fullmatch(selector.removeprefix("spec.nodeName="))
        if selector.startswith("spec.nodeName=") and on_node and int(on_node.group(1)) >= nodes:
            request["fieldSelector"] = f"spec.nodeName={pool}-{nodes - 1}"
            changes.append(f"{selector} → {request['fieldSelector']} (the pool has {nodes})")
        get = item.get("staleGet") or item.get("quorumGet")
        if get is None:
            continue
        index = node.fullmatch(get.get("name", ""))
        if get["resource"] == "nodes" and index and int(index.group(1)) >= nodes:
            get["name"] = f"{pool}-{nodes - 1}"
            changes.append(f"node {index.group(0)} → {get['name']} (the pool has {nodes})")
        elif get["resource"] == "pods" and get.get("namespace") == KWOK_NAMESPACE:
            if bench.settings.node_pool_backend != "kwok":
                _stand_in_pod(bench, namespace, get["name"])
                changes.append(f"pod {KWOK_NAMESPACE}/{get['name']} → {namespace}/{get['name']}")
                get["namespace"] = namespace
    return changes


def _stand_in_pod(bench: BenchRun, namespace: str, name: str) -> None:
    from kubernetes import client

    pod = {
        "metadata": {"name": name, "labels": bench.labels},
        "spec": {
            **virtual_node_placement(),
            "containers": [{"name": "stand-in", "image": FAKE_IMAGE}],
        },
    }
    client.CoreV1Api(bench.api).create_namespaced_pod(namespace, pod)
