"""``runkperf bench node100_pod10k``: 100 virtual nodes, 10,000 pods of --deployments Deployments
restarted one after another every --interval, 10 runners listing pods (one node's, all, one
namespace's from etcd).

Differences from upstream, on purpose: the Deployments are plain objects rather than a Helm
release (the same objects, each with the run's label); the restarts start once every Deployment
is available (upstream's FIXME: they started while the runners were being deployed), and their
count is reported.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from kperf_core import hookimpl
from kperf_core.durations import Duration
from kperf_core.scenarios import BenchReport, BenchSettings, Scenario

from .case_specs import (
    COMMON_OPTIONS,
    load_spec,
    node_shape,
    runner_summary,
    total_option,
    tweak_spec,
)
from .deployment_workload import (
    Restarts,
    deployment,
    deployment_name,
    rolling_restarts,
    wait_rolled_out,
)
from .read_targets import fit_read_targets

if TYPE_CHECKING:
    from kperf_core.bench_run import BenchRun

POOL, NODES, PODS = "node100pod10k", 100, 10000


class Node100Pod10k(Scenario):
    """100 virtual nodes and 10000 pods of --deployments Deployments (each in its namespace
    benchmark-<i>, pods padded with --padding-bytes), each restarted in turn every --interval,
    while 10 runners send --total requests each at 10/s: stale LIST of one node's pods, of all
    pods, and quorum LIST of benchmark-0's pods (limit 100)."""

    name = "node100_pod10k"
    summary = "100 nodes, 10k pods of Deployments rolling-restarted; 10 runners listing pods"
    options = (
        click.Option(["--deployments"], type=click.IntRange(min=1), default=20,
                     show_default=True, help="Deployments, each in its own namespace."),
        total_option(36000, "Requests per runner."),
        click.Option(["--padding-bytes"], type=click.IntRange(min=0), default=0,
                     show_default=True, help="Bytes of padding annotation per pod."),
        click.Option(["--interval"], type=Duration(0, min_open=True), default="10s",
                     show_default=True,
                     help="Pause between rounds of rolling restarts (10s, 1m30s, or seconds)."),
        *COMMON_OPTIONS,
    )  # fmt: skip

    def check(self, settings: BenchSettings, options: Mapping[str, Any]) -> list[str]:
        nodes = settings.scaled(NODES)
        replicas = self.replicas(settings, options)
        # Room for every pod plus one Deployment's surge while it rolls.
        needed = replicas * options["deployments"] + replicas
        room = nodes * options["max_pods"]
        if needed > room:
            return [f"{needed} pods (with a rolling restart's surge) do not fit on {nodes} nodes "
                    f"of {options['max_pods']} pods; raise --max-pods or the scale"]  # fmt: skip
        return []

    @staticmethod
    def replicas(settings: BenchSettings, options: Mapping[str, Any]) -> int:
        return math.ceil(settings.scaled(PODS) / options["deployments"])

    def run(self, bench: BenchRun, options: Mapping[str, Any]) -> BenchReport:
        from kubernetes import client

        from kperf_core.report import go_duration

        settings, count = bench.settings, options["deployments"]
        nodes, replicas = settings.scaled(NODES), self.replicas(settings, options)
        bench.node_pool(POOL, nodes, node_shape(options))
        apps = client.AppsV1Api(bench.api)
        for index in range(count):
            namespace = bench.namespace(deployment_name(index))
            body = deployment(index, replicas, options["padding_bytes"], bench.labels)
            apps.create_namespaced_deployment(namespace, body)
        bench.progress(
            f"deployments: {count} of {replicas} pods each created; waiting until available"
        )
        ready_started = bench.elapsed()
        namespaces = [deployment_name(index) for index in range(count)]
        with bench.watching(
            lambda: f"pods running {bench.count_pods(namespaces, 'Running')}/{count * replicas}"
        ):
            for name in namespaces:
                wait_rolled_out(apps, name, name, settings.wait)
        ready_seconds = bench.elapsed() - ready_started
        bench.progress(f"deployments: {count * replicas} pods available")
        restarts = Restarts()
        bench.in_background(
            "rolling-restarts", rolling_restarts(bench.api, count, options["interval"], restarts)
        )
        spec = tweak_spec(
            load_spec(self.name), settings, total=options["total"],
            content_type=options["content_type"],
        )  # fmt: skip
        retargeted = fit_read_targets(bench, spec, POOL, nodes)
        result = bench.run_runner_group(spec)
        description = (
            f"Environment: {nodes} virtual nodes ({settings.node_pool_backend}).\n"
            f"Workload: {count} Deployments of {replicas} pods (padding "
            f"{options['padding_bytes']} B), each restarted in turn every "
            f"{options['interval']:g} s.\nRunners: {runner_summary(spec)}."
        )
        info: dict[str, Any] = {
            "nodes": nodes,
            "deployments": count,
            "replicas": replicas,
            "podSizeInBytes": _pod_size(bench.api),
            "interval": go_duration(options["interval"]),  # upstream's string: "10s"
            "availableAfterSeconds": round(ready_seconds, 3),
            "rollingRestarts": restarts.completed,
            "rollingRestartsFailed": restarts.failed,
        }
        if retargeted:
            info["readTargets"] = retargeted
        return BenchReport(description=description, load_spec=spec, result=result, info=info)


def _pod_size(api: Any) -> int:
    """The JSON size of one pod of ``benchmark-0``, rounded down to KiB as upstream reports it."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(deployment_name(0), limit=1, _preload_content=False)
    (pod,) = json.loads(pods.data)["items"][:1]
    return len(json.dumps(pod, separators=(",", ":"))) // 1024 * 1024


@hookimpl
def kperf_register_scenarios(registry):  # type: ignore[no-untyped-def]
    registry.add(Node100Pod10k)
