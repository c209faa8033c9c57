"""Node-pool specs and upstream's Node objects, without a cluster."""

from __future__ import annotations

from kperf_plugins.backends.node_pools.nodes import node_manifest, pool_selector

from kperf_core.backends import NodePoolSpec


def test_spec_problems_are_all_reported() -> None:
    spec = NodePoolSpec(name="a-controller", nodes=0, cpu=-1, memory_gib=0, max_pods=0)
    assert spec.problems() == [
        "--nodes must be > 0 (got 0)",
        "--cpu must be > 0 (got -1)",
        "--memory must be > 0 (got 0)",
        "--max-pods must be > 0 (got 0)",
        "name 'a-controller' must not end with '-controller' (kwok's releases)",
    ]
    assert NodePoolSpec(name="ok-pool").problems() == []
    assert "DNS label" in NodePoolSpec(name="Upper").problems()[0]
    assert "DNS label" in NodePoolSpec(name="x" * 64).problems()[0]


def test_node_is_upstreams_with_the_pools_sizes_and_labels() -> None:
    spec = NodePoolSpec(
        name="np", cpu=4, memory_gib=8, max_pods=30, node_labels={"zone": "a"},
        shared_provider_id="kwok://fake",
    )  # fmt: skip
    node = node_manifest(spec, 3, "embedded")
    assert node["metadata"]["name"] == "np-3"
    labels = node["metadata"]["labels"]
    assert labels["type"] == "kperf-virtualnodes"
    assert labels["alpha.kperf.io/nodepool"] == "np"
    assert labels["kubernetes.io/hostname"] == "np-3"
    assert labels["zone"] == "a"
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/manage"] == "np-3"
    assert node["spec"] == {
        "taints": [{"key": "kperf.io/nodepool", "value": "fake", "effect": "NoSchedule"}],
        "providerID": "kwok://fake",
    }
    resources = {"cpu": "4", "memory": "8Gi", "pods": "30"}
    assert node["status"]["capacity"] == node["status"]["allocatable"] == resources
    assert "conditions" not in node["status"]  # Ready comes from whatever runs the node
    assert pool_selector("np") == "type=kperf-virtualnodes,alpha.kperf.io/nodepool=np"


def test_fake_logs_honour_tail_lines_and_limit_bytes() -> None:
    from kperf_plugins.backends.node_pools.kubelet_logs import LOG_LINES, log_text

    whole = log_text("ns", "p", "c", None, None).decode().splitlines()
    assert len(whole) == LOG_LINES and whole[0] == "kperf embedded simulator: ns/p/c line 1"
    assert log_text("ns", "p", "c", 2, None).decode().splitlines() == whole[-2:]
    assert log_text("ns", "p", "c", 0, None) == b""
    assert log_text("ns", "p", "c", None, 7) == whole[0][:7].encode()
