"""``runkperf warmup``: load a managed control plane until it scales its API servers up
(GOMAXPROCS at or above a threshold), as upstream's warmup: 100 virtual nodes, a Job of 3,000
pods re-run, 10 runners listing pods and events; the API servers' cores read before and after.

Differences from upstream, on purpose: warmup fails (exit 1) when the API servers' cores are known
and still below the threshold afterwards (upstream reported success whenever its runners did);
when the server does not expose them (``go_sched_gomaxprocs_threads``, e.g. Kubernetes 1.20) it
says so and succeeds on the runners' success; the runners keep ``--rg-affinity`` (upstream passed
none, which unpinned them); ``--eks`` only shares a providerID (upstream also removed every
toleration of kube-system's ``aws-node`` and ``kube-proxy`` DaemonSets, which kperf does not do).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import click

from kperf_core import hookimpl
from kperf_core.cli import plugin_manager
from kperf_core.commands import CommandRegistry
from kperf_core.errors import KperfError
from kperf_core.scenarios import NodeShape

from .bench_command import bench_settings, cluster_flags
from .case_specs import load_spec, tweak_spec
from .job_cases import JOB_INTERVAL_SECONDS
from .job_workload import JobChurn, repeat_job, upstream_job

POOL, NODES, NAMESPACE, PODS, PARALLELISM = "warmup", 100, "warmupjob", 3000, 100


class NotWarm(KperfError):
    """The API servers did not reach the cores threshold."""


def ready(cores: Mapping[str, int], threshold: int, eks: bool) -> bool | None:
    """Upstream's test: at least one API server (two on EKS) at ``threshold`` cores or more;
    None when the servers' cores are unknown."""
    if not cores:
        return None
    return sum(1 for n in cores.values() if n >= threshold) >= (2 if eks else 1)


@click.command("warmup")
@cluster_flags
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=20,
    show_default=True,
    help="Requests per second of each runner.",
)
@click.option(
    "--total",
    type=click.IntRange(min=1),
    default=10000,
    show_default=True,
    help="Requests of each runner.",
)
@click.option(
    "--core-warmup-ready-threshold",
    "threshold",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="GOMAXPROCS an API server must reach.",
)
@click.option(
    "--scale",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=1.0,
    show_default=True,
    help="Shrink nodes, pods, runners and requests to this fraction.",
)
def warmup_command(rate: float, total: int, threshold: int, scale: float, **flags: Any) -> None:
    """Load the API servers until they scale up; print their cores before and after (JSON)."""
    from kperf_core.live_status import LiveStatus

    settings = bench_settings(flags, scale)
    status = LiveStatus()
    try:
        before, after, result = _warm_up(settings, rate, total, threshold, status)
    finally:
        status.close()
    verdict = ready(after, threshold, settings.eks)
    requests = result["aggregated"]["requests"] if result else None
    document = {"threshold": threshold, "cores": {"before": before, "after": after},
                "ready": verdict, "requests": requests}  # fmt: skip
    click.echo(json.dumps(document, indent=2))
    if verdict is None:
        status.message("the API server does not expose its cores (go_sched_gomaxprocs_threads): "
                       "warmup ran, readiness unknown")  # fmt: skip
    elif not verdict:
        raise NotWarm(f"API servers below {threshold} cores after warmup: {after}")


def _warm_up(
    settings: Any, rate: float, total: int, threshold: int, status: Any
) -> tuple[dict[str, int], dict[str, int], dict[str, Any] | None]:
    """Cores before, cores after, and the runner group's report (None when already warm)."""
    from kperf_core.bench_run import BenchRun

    with BenchRun(settings, plugin_manager(), "warmup", status) as bench:
        before = bench.apiserver_facts()["cores"]
        result = None
        if ready(before, threshold, settings.eks):
            bench.progress(f"API servers already at >= {threshold} cores: nothing to do")
        else:
            bench.node_pool(POOL, settings.scaled(NODES), NodeShape())
            namespace = bench.namespace(NAMESPACE)
            job = upstream_job(
                "batchjobs", settings.scaled(PODS), settings.scaled(PARALLELISM), bench.labels
            )
            churn = JobChurn()
            work = repeat_job(bench.api, namespace, job, JOB_INTERVAL_SECONDS, churn)
            bench.in_background("repeat-job", work)
            bench.show(churn.describe)
            spec = load_spec("warmup")
            spec["loadProfile"]["specs"][0]["rate"] = rate
            result = bench.run_runner_group(tweak_spec(spec, settings, total=total))
        after = bench.apiserver_facts()["cores"]
    return before, after, result


@hookimpl
def kperf_register_commands(commands: CommandRegistry) -> None:
    commands.add(warmup_command, programs=("kperf", "runkperf"))
