"""Upstream's deployments workload (``node100_pod10k``): N Deployments ``benchmark-<i>``, each in
its own namespace, pods on virtual nodes carrying a padding annotation; then rolling restarts of
every Deployment, one after the other, every interval, for the whole measurement.

Upstream installed them with a Helm chart; here they are the same objects created directly (the
run's label on each), restarted as ``kubectl rollout restart`` does (a ``restartedAt`` annotation
on the pod template) and awaited as ``kubectl rollout status`` does.
"""

from __future__ import annotations

import datetime
import random
import string
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from kperf_core.errors import BackendError
from kperf_core.virtual_nodes import FAKE_IMAGE, virtual_node_placement

#: Upstream's chart: at most this many extra pods while a Deployment rolls.
MAX_SURGE = 100
#: Upstream's ``kubectl rollout status`` timeout.
ROLLOUT_TIMEOUT_SECONDS = 600.0
POLL_SECONDS = 0.5


def deployment_name(index: int) -> str:
    return f"benchmark-{index}"


def deployment(
    index: int, replicas: int, padding_bytes: int, labels: Mapping[str, str]
) -> dict[str, Any]:
    name = deployment_name(index)
    pod_labels = {"app": "benchmark", "name": name}
    annotations = {"data": "".join(random.choices(string.ascii_letters, k=padding_bytes))}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {**labels, **pod_labels}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": pod_labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": MAX_SURGE}},
            "template": {
                "metadata": {"labels": {**labels, **pod_labels}, "annotations": annotations},
                "spec": {
                    **virtual_node_placement(),
                    "containers": [{"name": "fake-container", "image": FAKE_IMAGE}],
                },
            },
        },
    }


def wait_rolled_out(
    apps: Any, namespace: str, name: str, timeout: float, stop: threading.Event | None = None
) -> bool:
    """Wait as ``kubectl rollout status`` does: the new generation observed, every replica
    updated and available, no old one left. False when ``stop`` was set first."""
    deadline = time.monotonic() + timeout
    while stop is None or not stop.is_set():
        found = apps.read_namespaced_deployment_status(name, namespace)
        status, wanted = found.status, found.spec.replicas
        if (
            (status.observed_generation or 0) >= found.metadata.generation
            and (status.updated_replicas or 0) == wanted
            and (status.replicas or 0) == wanted
            and (status.available_replicas or 0) == wanted
        ):
            return True
        if time.monotonic() > deadline:
            raise BackendError(f"deployment {namespace}/{name}: not rolled out in {timeout:g} s")
        time.sleep(POLL_SECONDS)
    return False


@attrs.define
class Restarts:
    """What the rolling restarts did, for the report's ``info``."""

    completed: int = 0
    failed: int = 0


def rolling_restarts(
    api: Any, deployments: int, interval: float, restarts: Restarts
) -> Callable[[threading.Event], None]:
    """Every ``interval``: restart each Deployment in turn and wait for it to roll out. A failed
    restart is counted and the loop goes on, as upstream's only logged it."""

    def work(stop: threading.Event) -> None:
        from kubernetes import client

        apps = client.AppsV1Api(api)
        while not stop.wait(interval):
            for index in range(deployments):
                if stop.is_set():
                    return
                name = deployment_name(index)
                now = datetime.datetime.now(datetime.UTC).isoformat()
                patch = {
                    "spec": {
                        "template": {
                            "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}
                        }
                    }
                }
                try:
                    apps.patch_namespaced_deployment(name, name, patch)
                    if wait_rolled_out(apps, name, name, ROLLOUT_TIMEOUT_SECONDS, stop):
                        restarts.completed += 1
                except BackendError:
                    restarts.failed += 1

    return work
