"""``runkperf bench node100_job10_pod10k``: 100 virtual nodes, 10 Jobs of 1,000 pods created at
once, 10 runners reading pods, Jobs, nodes and namespaces.

The Jobs are upstream's chart's objects (``benchmark-jobs-<i>`` labelled ``app=kperf-benchmark``,
``job-group``, ``job-index``; pods ``app=fake-pod``, ``job``, ``job-group``, ``job-index``;
``backoffLimit`` 3) created as plain objects. Differences, on purpose: ``--ttlSecondsAfterFinished``
reaches the Jobs (upstream's flag was never wired, and its chart's 0 deleted each Job as it
finished while the profile kept reading ``benchmark-jobs-5``); unset, the Jobs stay until the run
ends. ``--scale`` shrinks nodes, pods per Job and parallelism, not the number of Jobs (the profile
reads ``benchmark-jobs-5``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from kperf_core import hookimpl
from kperf_core.scenarios import BenchReport, Scenario

from .case_specs import (
    COMMON_OPTIONS,
    load_spec,
    node_shape,
    runner_summary,
    total_option,
    tweak_spec,
)
from .job_workload import succeeded_pods, upstream_job
from .read_targets import fit_read_targets

if TYPE_CHECKING:
    from kperf_core.bench_run import BenchRun

POOL, NODES, NAMESPACE = "node100job10pod10k", 100, "job10pod10k"
JOBS, PODS_PER_JOB = 10, 1000
#: upstream's chart
BACKOFF_LIMIT = 3


class Node100Job10Pod10k(Scenario):
    """100 virtual nodes and 10 Jobs of 1000 pods (--parallelism each) created once, while
    10 runners send --total requests each at 10/s: stale LISTs of the Jobs' pods, Jobs, nodes
    and namespaces, stale GETs of a pod, a Job, a node and the namespace."""

    name = "node100_job10_pod10k"
    summary = "100 nodes, 10 Jobs of 1k pods; 10 runners reading pods, Jobs, nodes, namespaces"
    options = (
        total_option(1000, "Requests per runner."),
        click.Option(["--parallelism"], type=click.IntRange(min=1), default=100,
                     show_default=True, help="Pods of each Job running at once."),
        click.Option(["--ttlSecondsAfterFinished", "ttl_seconds_after_finished"],
                     type=click.IntRange(min=0), default=None,
                     help="Delete each Job this long after it finished (default: keep them)."),
        *COMMON_OPTIONS,
    )  # fmt: skip

    def run(self, bench: BenchRun, options: Mapping[str, Any]) -> BenchReport:
        from kubernetes import client

        settings = bench.settings
        nodes, pods = settings.scaled(NODES), settings.scaled(PODS_PER_JOB)
        parallelism = min(pods, settings.scaled(options["parallelism"]))
        bench.node_pool(POOL, nodes, node_shape(options))
        namespace = bench.namespace(NAMESPACE)
        batch = client.BatchV1Api(bench.api)
        for index in range(JOBS):
            batch.create_namespaced_job(namespace, _job(index, pods, parallelism, bench, options))
        bench.progress(f"jobs: {JOBS} of {pods} pods created in {namespace}")
        bench.show(
            lambda: f"pods succeeded {bench.count_pods((namespace,), 'Succeeded')}/{JOBS * pods}"
        )
        spec = tweak_spec(
            load_spec(self.name),
            settings,
            total=options["total"],
            content_type=options["content_type"],
        )
        retargeted = fit_read_targets(bench, spec, POOL, nodes, namespace)
        result = bench.run_runner_group(spec)
        description = (
            f"Environment: {nodes} virtual nodes ({settings.node_pool_backend}).\n"
            f"Workload: {JOBS} Jobs of {pods} pods (parallelism {parallelism}) in namespace "
            f"{namespace}, created once.\nRunners: {runner_summary(spec)}."
        )
        info: dict[str, Any] = {
            "nodes": nodes,
            "jobs": JOBS,
            "podsPerJob": pods,
            "jobParallelism": parallelism,
            "podsSucceeded": succeeded_pods(bench.api, namespace),
        }
        if retargeted:
            info["readTargets"] = retargeted
        return BenchReport(description=description, load_spec=spec, result=result, info=info)


def _job(
    index: int, pods: int, parallelism: int, bench: BenchRun, options: Mapping[str, Any]
) -> dict[str, Any]:
    name = f"benchmark-jobs-{index}"
    group = {"job-group": "benchmark-jobs", "job-index": str(index)}
    job = upstream_job(
        name,
        pods,
        parallelism,
        bench.labels,
        job_labels={"app": "kperf-benchmark", **group},
        pod_labels={"job": name, **group},
    )
    job["spec"]["backoffLimit"] = BACKOFF_LIMIT
    if options["ttl_seconds_after_finished"] is not None:
        job["spec"]["ttlSecondsAfterFinished"] = options["ttl_seconds_after_finished"]
    return job


@hookimpl
def kperf_register_scenarios(registry):  # type: ignore[no-untyped-def]
    registry.add(Node100Job10Pod10k)
