"""What the data sets share (``runkperf data configmap|daemonset``): their app labels, and their
namespaces — created when missing (as upstream) and labelled as kperf's, so deleting the last
set in one also removes the namespace, never one kperf did not create."""

from __future__ import annotations

from typing import Any

from kperf_core.cluster_api import ignore_missing

MANAGED_BY = ("app.kubernetes.io/managed-by", "kperf")
#: Upstream's app labels of ConfigMap and DaemonSet sets.
CONFIGMAP_APP = ("app", "runkperf")
DAEMONSET_APP = ("app", "fake-daemonset")


def ensure_namespace(api: Any, namespace: str) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api)
    if namespace_exists(api, namespace):
        return
    body = {"metadata": {"name": namespace, "labels": {MANAGED_BY[0]: MANAGED_BY[1]}}}
    try:
        core.create_namespace(body)
    except ApiException as exc:
        if exc.status != 409:  # created meanwhile by someone else: it is there, which is all
            raise


def namespace_exists(api: Any, namespace: str) -> bool:
    from kubernetes import client

    return ignore_missing(client.CoreV1Api(api).read_namespace, namespace) is not None


def release_namespace(api: Any, namespace: str) -> None:
    """Delete ``namespace`` if kperf created it and no data set is left in it."""
    from kubernetes import client

    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    found = ignore_missing(core.read_namespace, namespace)
    labels = (found.metadata.labels or {}) if found is not None else {}
    if labels.get(MANAGED_BY[0]) != MANAGED_BY[1]:
        return
    configmaps = core.list_namespaced_config_map(
        namespace, label_selector="=".join(CONFIGMAP_APP), limit=1
    )
    daemonsets = apps.list_namespaced_daemon_set(
        namespace, label_selector="=".join(DAEMONSET_APP), limit=1
    )
    if not configmaps.items and not daemonsets.items:
        ignore_missing(core.delete_namespace, namespace)
