"""The ``kwok`` node-pool backend: upstream's design — kwok controllers installed with Helm (one per
node), kwok Stage objects for the lifecycles, and the Node objects as a release of their own.

Releases in namespace ``virtualnodes-kperf-io``, as upstream names them: ``lifecycle-crd`` and
``lifecycle-def`` (shared; kperf removes them with the last kwok pool, upstream never does),
``<pool>-controller`` and ``<pool>``. Nodes become Ready when the kwok controllers run, which needs
a container runtime: on the local control plane use ``--backend embedded``.

Helm runs in-process through helm-python-sdk (Helm's Go SDK behind a C ABI): no helm binary.
"""

from __future__ import annotations

import time
from importlib.resources import files
from pathlib import Path
from typing import Any

from kperf_core.backends import NodePoolBackend, NodePoolSpec
from kperf_core.cluster_api import api_client
from kperf_core.errors import BackendError, ConfigError

from ..helm_calls import helm_call, helm_config
from .nodes import (
    NAMESPACE,
    delete_nodes,
    list_pools,
    node_manifest,
    refuse_existing,
    wait_ready,
)

SHARED_RELEASES = ("lifecycle-crd", "lifecycle-def")  # install order; removal is the reverse
STAGE_CRD = "stages.kwok.x-k8s.io"


def chart(name: str) -> Path:
    return Path(str(files("kperf_charts") / "virtualnodes" / name))


class KwokNodePool(NodePoolBackend):
    name = "kwok"

    def __init__(self, kubeconfig: Path | None, context: str | None, **options: Any) -> None:
        super().__init__(kubeconfig, context)
        self.api = api_client(kubeconfig, context)
        self.helm = helm_config(kubeconfig, context, NAMESPACE)

    def add(self, spec: NodePoolSpec, wait: float) -> None:
        refuse_existing(self.api, spec.name)
        if spec.name in self._releases():
            raise ConfigError(f"node pool {spec.name!r}: release {spec.name} exists already")
        self._install_shared()
        try:  # all or nothing, Ctrl-C included
            # Controllers first, as upstream: cloud providers delete unknown NotReady nodes.
            self._helm(
                "install",
                chart("controllers"),
                f"{spec.name}-controller",
                {
                    "name": spec.name,
                    "replicas": spec.nodes,
                    "nodeSelectors": {k: list(v) for k, v in spec.affinity.items()},
                },
                wait="watcher" if wait else None,
                timeout=int(wait) if wait else None,
            )
            nodes = [node_manifest(spec, i, self.name) for i in range(spec.nodes)]
            self._helm("install", chart("nodes"), spec.name, {"nodes": nodes})
            if wait:
                wait_ready(self.api, spec, wait)
        except BaseException:
            self.delete(spec.name)
            raise

    def delete(self, name: str) -> None:
        delete_nodes(self.api, name)  # bound pods first: nothing will run them any more
        for release in (name, f"{name}-controller"):
            self._helm("uninstall", release, ignore_not_found=True)
        if not any(pool.backend == self.name for pool in list_pools(self.api)):
            for release in reversed(SHARED_RELEASES):
                self._helm("uninstall", release, ignore_not_found=True)
            self._delete_namespace()

    # -- helm -----------------------------------------------------------------------------------

    def _install_shared(self) -> None:
        releases = self._releases()
        for release in SHARED_RELEASES:
            action = "upgrade" if release in releases else "install"
            self._helm(action, chart(release), release, {}, create_namespace=action == "install")
            if release == "lifecycle-crd":
                self._wait_crd_established()

    def _releases(self) -> set[str]:
        return {release["name"] for release in self._helm("list")}

    def _helm(self, action: str, *args: Any, **kwargs: Any) -> Any:
        return helm_call(self.helm, action, *args, **kwargs)

    def _delete_namespace(self) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            client.CoreV1Api(self.api).delete_namespace(NAMESPACE)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _wait_crd_established(self, timeout: float = 30) -> None:
        from kubernetes import client

        extensions = client.ApiextensionsV1Api(self.api)
        deadline = time.monotonic() + timeout
        while True:
            crd = extensions.read_custom_resource_definition(STAGE_CRD)
            conditions = (crd.status and crd.status.conditions) or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                return
            if time.monotonic() > deadline:
                raise BackendError(f"CRD {STAGE_CRD} not established after {timeout:.0f} s")
            time.sleep(0.2)
