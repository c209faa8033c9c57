"""DaemonSet data sets (``runkperf data daemonset``): ``count`` DaemonSets ``<name>-<i>`` whose
pods run on every virtual node — one pod per virtual node per DaemonSet, as upstream's.

Labels are upstream's: ``app=fake-daemonset``, ``dsName=<name>``, ``idx=<i>``.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

import attrs

from kperf_core.errors import ConfigError
from kperf_core.virtual_nodes import FAKE_IMAGE, virtual_node_placement

from .data_sets import DAEMONSET_APP, ensure_namespace, namespace_exists, release_namespace
from .throttle import TokenBucket

APP = DAEMONSET_APP
SET_LABEL = "dsName"
INDEX_LABEL = "idx"


def set_selector(set_name: str | None = None) -> str:
    selector = f"{APP[0]}={APP[1]}"
    return f"{selector},{SET_LABEL}={set_name}" if set_name else selector


@attrs.frozen
class DaemonSetSetStatus:
    name: str
    namespace: str
    count: int


def create_set(api: Any, namespace: str, name: str, count: int, limiter: TokenBucket) -> None:
    """Create DaemonSets ``<name>-0`` … ``<name>-<count-1>``; all or nothing."""
    from kubernetes import client

    if count <= 0:
        raise ConfigError(f"--count must be > 0 (got {count})")
    if list_sets(api, namespace, [name]):
        raise ConfigError(
            f"daemonset set {name!r} exists already in namespace {namespace!r} (delete it first)"
        )
    ensure_namespace(api, namespace)
    apps = client.AppsV1Api(api)
    try:
        for i in range(count):
            limiter.take()
            apps.create_namespaced_daemon_set(namespace, _manifest(name, i))
    except BaseException:
        delete_set(api, namespace, name, missing_ok=True)
        raise


def list_sets(api: Any, namespace: str, names: Iterable[str] = ()) -> list[DaemonSetSetStatus]:
    from kubernetes import client

    if not namespace_exists(api, namespace):
        return []
    found = client.AppsV1Api(api).list_namespaced_daemon_set(
        namespace, label_selector=set_selector()
    )
    counts = collections.Counter(ds.metadata.labels.get(SET_LABEL, "") for ds in found.items)
    wanted = set(names)
    return [
        DaemonSetSetStatus(name, namespace, count)
        for name, count in sorted(counts.items())
        if not wanted or name in wanted
    ]


def delete_set(api: Any, namespace: str, name: str, *, missing_ok: bool = False) -> int:
    """Delete the set's DaemonSets (their pods follow through garbage collection) and, with the
    last set, a namespace kperf created for it. Returns how many DaemonSets there were."""
    from kubernetes import client

    found = sum(s.count for s in list_sets(api, namespace, [name]))
    if not found and not missing_ok:
        raise ConfigError(f"daemonset set {name!r}: none found in namespace {namespace!r}")
    if found:
        client.AppsV1Api(api).delete_collection_namespaced_daemon_set(
            namespace, label_selector=set_selector(name), propagation_policy="Background"
        )
    release_namespace(api, namespace)
    return found


def _manifest(name: str, index: int) -> dict[str, Any]:
    labels = {APP[0]: APP[1], SET_LABEL: name, INDEX_LABEL: str(index)}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": f"{name}-{index}", "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    **virtual_node_placement(),
                    "containers": [{"name": "fake-container", "image": FAKE_IMAGE}],
                },
            },
        },
    }
