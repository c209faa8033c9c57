"""The ``kwok`` node-pool backend: upstream's design — kwok controllers installed with Helm (one per
node), kwok Stage objects for the lifecycles, and the Node objects as a release of their own.

Releases in namespace ``virtualnodes-kperf-io``, as upstream names them: ``lifecycle-crd`` and
``lifecycle-def`` (shared; kperf removes them with the last kwok pool, upstream never does),
``<pool>-controller`` and ``<pool>``.

Where kwok's controllers run (``--kwok-controllers``):

* ``cluster`` — the chart's StatefulSet, one pod per node and the chart's image, as upstream;
* ``local`` — the real ``kwok`` program (installed by ``kperf local provision``, the version of the
  chart's image) as a process on this machine, one per pool, with the chart's arguments and
  KwokConfiguration and the pool's ServiceAccount token, so its RBAC and FlowSchema apply as in
  the cluster. Its pid file and log live in ``$KPERF_STATE_DIR/kwok/<cluster>/<pool>/``;
* ``auto`` (default) — ``local`` when no real node is Ready (the local control plane has none, and
  the StatefulSet's pods could never run), ``cluster`` otherwise.

Helm runs in-process through helm-python-sdk (Helm's Go SDK behind a C ABI): no helm binary.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

from kperf_core.backends import NodePoolBackend, NodePoolSpec
from kperf_core.cluster_api import api_client, await_namespace_usable, delete_namespace
from kperf_core.errors import BackendError, ConfigError
from kperf_core.helm import helm_call, helm_config
from kperf_core.processes import PidFile
from kperf_core.virtual_nodes import POOL_LABEL, VIRTUAL_NODE_LABEL

from .nodes import (
    NAMESPACE,
    cluster_state_dir,
    delete_nodes,
    is_ready,
    list_pools,
    node_manifest,
    refuse_existing,
    tail,
    wait_ready,
)

SHARED_RELEASES = ("lifecycle-crd", "lifecycle-def")  # install order; removal is the reverse
STAGE_CRD = "stages.kwok.x-k8s.io"
CONTROLLER_PLACES = ("auto", "local", "cluster")
#: The local kwok's ServiceAccount token lives as long as a benchmark cluster might.
LOCAL_TOKEN_SECONDS = 365 * 24 * 3600


def chart(name: str) -> Path:
    return Path(str(files("kperf_charts") / "virtualnodes" / name))


class KwokNodePool(NodePoolBackend):
    name = "kwok"

    def __init__(
        self,
        kubeconfig: Path | None,
        context: str | None,
        *,
        kwok_controllers: str = "auto",
        **options: Any,
    ) -> None:
        super().__init__(kubeconfig, context)
        if kwok_controllers not in CONTROLLER_PLACES:
            raise ConfigError(
                f"--kwok-controllers {kwok_controllers!r}: expected one of "
                + ", ".join(CONTROLLER_PLACES)
            )
        self.controllers = kwok_controllers
        self.api = api_client(kubeconfig, context)
        self.helm = helm_config(kubeconfig, context, NAMESPACE)
        self.state_dir = cluster_state_dir(self.api, context, "kwok")

    def add(self, spec: NodePoolSpec, wait: float) -> None:
        refuse_existing(self.api, spec.name)
        if spec.name in self._releases():
            raise ConfigError(f"node pool {spec.name!r}: release {spec.name} exists already")
        local = self._controllers_run_locally()
        kwok = local_kwok_binary() if local else None
        self._install_shared()
        try:  # all or nothing, Ctrl-C included
            values = {
                "name": spec.name,
                "replicas": spec.nodes,
                "nodeSelectors": {k: list(v) for k, v in spec.affinity.items()},
            }
            # Controllers first, as upstream: cloud providers delete unknown NotReady nodes.
            self._helm(
                "install",
                chart("controllers"),
                f"{spec.name}-controller",
                {**values, "statefulSet": not local},
                wait="watcher" if wait and not local else None,
                timeout=int(wait) if wait and not local else None,
            )
            if kwok is not None:
                self._start_local_kwok(kwok, spec.name, values)
            nodes = [node_manifest(spec, i, self.name) for i in range(spec.nodes)]
            self._helm("install", chart("nodes"), spec.name, {"nodes": nodes})
            if wait:
                diagnose = (lambda: self._diagnose(spec.name)) if local else None
                wait_ready(self.api, spec, wait, diagnose=diagnose)
        except BaseException:
            self.delete(spec.name)
            raise

    def delete(self, name: str) -> None:
        # The local controller first: it would renew the leases delete_nodes removes.
        self._local_kwok(name).stop()
        shutil.rmtree(self._local_dir(name), ignore_errors=True)
        with contextlib.suppress(OSError):
            self.state_dir.rmdir()  # once no pool of this cluster runs here
        delete_nodes(self.api, name)  # bound pods first: nothing will run them any more
        for release in (name, f"{name}-controller"):
            self._helm("uninstall", release, ignore_not_found=True)
        if not any(pool.backend == self.name for pool in list_pools(self.api)):
            for release in reversed(SHARED_RELEASES):
                self._helm("uninstall", release, ignore_not_found=True)
            # and wait: a pool added right after must not find the namespace terminating
            delete_namespace(self.api, NAMESPACE)

    # -- the local controller -------------------------------------------------------------------

    def _controllers_run_locally(self) -> bool:
        if self.controllers != "auto":
            return self.controllers == "local"
        from kubernetes import client

        real = f"{VIRTUAL_NODE_LABEL[0]}!={VIRTUAL_NODE_LABEL[1]}"
        nodes = client.CoreV1Api(self.api).list_node(label_selector=real).items
        return not any(is_ready(node) for node in nodes)

    def _local_dir(self, pool: str) -> Path:
        return self.state_dir / pool

    def _local_kwok(self, pool: str) -> PidFile:
        return PidFile(self._local_dir(pool) / "kwok.pid")

    def _start_local_kwok(self, kwok: Path, pool: str, values: dict[str, Any]) -> None:
        """Run kwok here as the chart's StatefulSet would run it: the chart's own rendering gives
        the arguments and the KwokConfiguration, so the two paths cannot drift apart."""
        import helm_python as helm
        from ruamel.yaml import YAML

        directory = self._local_dir(pool)
        directory.mkdir(parents=True, exist_ok=True)
        with helm.Chart.load(chart("controllers")) as loaded:
            rendered = loaded.render(
                {**values, "statefulSet": True}, name=f"{pool}-controller", namespace=NAMESPACE
            )
        yaml = YAML(typ="safe")
        config_map = yaml.load(rendered["controllers/templates/config.yaml"])
        statefulset = yaml.load(rendered["controllers/templates/statefulset.yaml"])
        [container] = statefulset["spec"]["template"]["spec"]["containers"]
        [mount] = container["volumeMounts"]
        for key, text in config_map["data"].items():
            (directory / key).write_text(text)
        argv = [str(kwok), f"--kubeconfig={self._write_token_kubeconfig(pool, directory)}"]
        for arg in container["args"]:
            if arg.startswith("--manage-single-node="):
                # One process for the pool instead of one pod per node.
                arg = f"--manage-nodes-with-label-selector={POOL_LABEL}={pool}"
            elif arg == "--node-ip=$(POD_IP)":
                arg = "--node-ip=127.0.0.1"  # where this controller runs
            arg = arg.replace(mount["mountPath"], str(directory))
            if "$(" in arg:
                raise BackendError(f"kwok chart argument {arg!r}: no local equivalent")
            argv.append(arg)
        self._local_kwok(pool).spawn(argv, directory / "kwok.log")

    def _write_token_kubeconfig(self, pool: str, directory: Path) -> Path:
        """A kubeconfig for the pool's ServiceAccount (the chart's RBAC and FlowSchema apply)."""
        import json

        from kubernetes import client

        from kperf_core.kube import kubeconfig_document, load_endpoint

        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=LOCAL_TOKEN_SECONDS)
        )
        token = (
            client.CoreV1Api(self.api)
            .create_namespaced_service_account_token(pool, NAMESPACE, request)
            .status.token
        )
        config = kubeconfig_document(load_endpoint(self.kubeconfig, self.context), token=token)
        path = directory / "kubeconfig"
        path.touch(mode=0o600)
        path.write_text(json.dumps(config))
        return path

    def _diagnose(self, pool: str) -> str:
        log = self._local_dir(pool) / "kwok.log"
        state = "runs" if self._local_kwok(pool).live_pid() else "is not running"
        return f"the local kwok controller {state}; its log: {log}\n{tail(log)}"

    # -- helm -----------------------------------------------------------------------------------

    def _install_shared(self) -> None:
        await_namespace_usable(self.api, NAMESPACE)
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


def local_kwok_binary() -> Path:
    """The kwok program ``kperf local provision`` installed (else one on PATH)."""
    from kperf_core.provisioned import kwok_binary, kwok_version

    found = kwok_binary() or (Path(hit) if (hit := shutil.which("kwok")) else None)
    if found is None:
        raise BackendError(
            f"kwok {kwok_version()} is not installed: run `kperf local provision` (it needs a Go "
            "toolchain), or use --backend embedded"
        )
    return found
