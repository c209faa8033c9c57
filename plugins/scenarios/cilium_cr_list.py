"""``runkperf bench cilium_cr_list``: Cilium's custom resources — CiliumIdentities and
CiliumEndpoints with realistic payloads — listed from the cache by 10 runners, as Cilium's agents
list them.

Differences from upstream, on purpose: the CRDs ship with kperf (``crds/``, minimal definitions of
the two kinds; upstream fetched Cilium v1.16.6's from GitHub at run time) and are removed again
when the run installed them; the custom resources carry the run's label and are removed at the
end (upstream left them); the API server's cores are reported as for every case.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import click

from kperf_core import hookimpl
from kperf_core.errors import BackendError
from kperf_core.scenarios import BenchReport, Scenario

from .case_specs import COMMON_OPTIONS, load_spec, runner_summary, tweak_spec

if TYPE_CHECKING:
    from kperf_core.bench_run import BenchRun

GROUP, VERSION = "cilium.io", "v2"
IDENTITIES, ENDPOINTS = "ciliumidentities", "ciliumendpoints"
#: Upstream's profile lists the endpoints of this namespace.
ENDPOINT_NAMESPACE = "default"
#: Upstream's parallel creators.
WORKERS = 50
ESTABLISHED_TIMEOUT_SECONDS = 60.0


class CiliumCrList(Scenario):
    """--num-cilium-identities CiliumIdentities and --num-cilium-endpoints CiliumEndpoints (in
    namespace default), listed by 10 runners at 20/s each from the cache, half each."""

    name = "cilium_cr_list"
    summary = "Cilium identities and endpoints (1000 each) listed by 10 runners"
    options = (
        click.Option(["--install-cilium-crds/--no-install-cilium-crds"], default=True,
                     show_default=True, help="Install the two CRDs when the cluster lacks them."),
        click.Option(["--num-cilium-identities"], type=click.IntRange(min=0), default=1000,
                     show_default=True, help="CiliumIdentities to create."),
        click.Option(["--num-cilium-endpoints"], type=click.IntRange(min=0), default=1000,
                     show_default=True, help="CiliumEndpoints to create."),
        *COMMON_OPTIONS,
    )  # fmt: skip

    def run(self, bench: BenchRun, options: Mapping[str, Any]) -> BenchReport:
        from kubernetes import client

        installed = _install_crds(bench) if options["install_cilium_crds"] else []
        custom = client.CustomObjectsApi(bench.api_with_connections(WORKERS))
        identities = bench.settings.scaled(options["num_cilium_identities"], minimum=0)
        endpoints = bench.settings.scaled(options["num_cilium_endpoints"], minimum=0)
        bench.on_cleanup(_delete_resources, custom, bench.labels)
        bench.progress(f"cilium: creating {identities} identities and {endpoints} endpoints")
        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(lambda i: _create_identity(custom, i, bench.labels), range(identities)))
            list(pool.map(lambda i: _create_endpoint(custom, i, bench.labels), range(endpoints)))
        spec = tweak_spec(
            load_spec(self.name), bench.settings, content_type=options["content_type"]
        )
        result = bench.run_runner_group(spec)
        description = (
            f"Environment: {identities} CiliumIdentities and {endpoints} CiliumEndpoints (in "
            f"namespace {ENDPOINT_NAMESPACE}).\nRunners: {runner_summary(spec)}; stale LISTs of "
            "the identities and of the endpoints."
        )
        info = {
            "numCiliumIdentities": identities,
            "numCiliumEndpoints": endpoints,
            "installedCRDs": installed,
        }
        return BenchReport(description=description, load_spec=spec, result=result, info=info)


def _install_crds(bench: BenchRun) -> list[str]:
    """Create the CRDs the cluster lacks (removed at the end); return their names."""
    import time

    from kubernetes import client
    from ruamel.yaml import YAML

    from kperf_core.cluster_api import ignore_missing

    crds = client.ApiextensionsV1Api(bench.api)
    installed = []
    for plural in (IDENTITIES, ENDPOINTS):
        name = f"{plural}.{GROUP}"
        if ignore_missing(crds.read_custom_resource_definition, name) is not None:
            continue
        body = YAML(typ="safe").load(
            files(__package__).joinpath("crds", f"{plural}.yaml").read_text()
        )
        body["metadata"]["labels"] = bench.labels
        bench.on_cleanup(_delete_crd, crds, name, bench.settings.wait)
        crds.create_custom_resource_definition(body)
        installed.append(name)
    deadline = time.monotonic() + ESTABLISHED_TIMEOUT_SECONDS
    for name in installed:
        while not _established(crds.read_custom_resource_definition(name)):
            if time.monotonic() > deadline:
                raise BackendError(
                    f"CRD {name}: not established in {ESTABLISHED_TIMEOUT_SECONDS:g} s"
                )
            time.sleep(0.2)
    return installed


def _delete_crd(crds: Any, name: str, wait: float) -> None:
    """Delete CRD ``name`` and wait until it is gone: the API server first removes every custom
    resource of it, and the run is only over once nothing of it is left."""
    import time

    from kperf_core.cluster_api import ignore_missing

    ignore_missing(crds.delete_custom_resource_definition, name)
    deadline = time.monotonic() + wait
    while ignore_missing(crds.read_custom_resource_definition, name) is not None:
        if time.monotonic() > deadline:
            raise BackendError(f"CRD {name} still there {wait:g} s after its deletion")
        time.sleep(0.2)


def _established(crd: Any) -> bool:
    return any(
        c.type == "Established" and c.status == "True" for c in (crd.status.conditions or ())
    )


def _security_labels(index: int) -> dict[str, str]:
    app = f"app-{index % 97}"
    return {
        "k8s:app": app,
        "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name": ENDPOINT_NAMESPACE,
        "k8s:io.cilium.k8s.policy.cluster": "default",
        "k8s:io.cilium.k8s.policy.serviceaccount": f"{app}-sa",
        "k8s:io.kubernetes.pod.namespace": ENDPOINT_NAMESPACE,
    }


def _create_identity(custom: Any, index: int, labels: Mapping[str, str]) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CiliumIdentity",
        "metadata": {"name": str(uuid.uuid4()), "labels": dict(labels)},
        "security-labels": _security_labels(index),
    }
    custom.create_cluster_custom_object(GROUP, VERSION, IDENTITIES, body)


def _create_endpoint(custom: Any, index: int, labels: Mapping[str, str]) -> None:
    identity = 10000 + index % 97
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CiliumEndpoint",
        "metadata": {"name": str(uuid.uuid4()), "labels": dict(labels)},
        "status": {
            "id": index + 1,
            "state": "ready",
            "identity": {
                "id": identity,
                "labels": [f"{k}={v}" for k, v in _security_labels(index).items()],
            },
            "networking": {
                "addressing": [{"ipv4": f"10.{random.randrange(256)}.{index // 256 % 256}."
                                        f"{index % 256}"}],
                "node": f"10.224.0.{index % 250 + 1}",
            },
            "encryption": {},
            "named-ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        },
    }  # fmt: skip
    custom.create_namespaced_custom_object(GROUP, VERSION, ENDPOINT_NAMESPACE, ENDPOINTS, body)


def _delete_resources(custom: Any, labels: Mapping[str, str]) -> None:
    from kperf_core.cluster_api import ignore_missing

    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    ignore_missing(
        custom.delete_collection_cluster_custom_object,
        GROUP, VERSION, IDENTITIES, label_selector=selector,
    )  # fmt: skip
    ignore_missing(
        custom.delete_collection_namespaced_custom_object,
        GROUP, VERSION, ENDPOINT_NAMESPACE, ENDPOINTS, label_selector=selector,
    )  # fmt: skip


@hookimpl
def kperf_register_scenarios(registry):  # type: ignore[no-untyped-def]
    registry.add(CiliumCrList)
